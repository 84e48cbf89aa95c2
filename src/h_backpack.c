/* h_backpack.c — to be written. */
#include "routes.h"
