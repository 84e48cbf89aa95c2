/*
 * routes.h — the route table (routes.c) and the handlers it names. The table
 * is the one screen a reader scans to see every endpoint, who may call it,
 * and which function answers.
 */
#ifndef S4S_ROUTES_H
#define S4S_ROUTES_H

#include <stddef.h>

#include "router.h"

extern const struct route s4s_routes[];
extern const size_t s4s_routes_count;

/* h_ops.c — health, process-manager status, metrics */
void h_api_status(struct request *r);
void h_status(struct request *r);
void h_metrics(struct request *r);
void h_test_sleep(struct request *r);
void h_test_upload(struct request *r);

#endif
