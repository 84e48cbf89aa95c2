/* projects.c — to be written. */
#include "projects.h"
