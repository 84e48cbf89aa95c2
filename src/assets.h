/* assets.h — to be written (see the issue). */
#ifndef S4S_ASSETS_H
#define S4S_ASSETS_H
#endif
