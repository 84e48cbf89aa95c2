/* projects.h — to be written (see the issue). */
#ifndef S4S_PROJECTS_H
#define S4S_PROJECTS_H
#endif
