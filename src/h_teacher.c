/* h_teacher.c — to be written. */
#include "routes.h"
