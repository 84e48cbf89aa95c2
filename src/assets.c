/* assets.c — to be written. */
#include "assets.h"
