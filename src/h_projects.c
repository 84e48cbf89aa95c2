/* h_projects.c — to be written. */
#include "routes.h"
