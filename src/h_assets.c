/* h_assets.c — to be written. */
#include "routes.h"
