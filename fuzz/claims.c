/*
 * claims.c — fuzz target for the identity provider's userinfo claims as
 * users_parse_claims (src/users.c) maps them (API.md "Login": the id,
 * username, email and groups fallbacks), and the role derived from them.
 * The provider is trusted less than the server: its JSON is parsed like a
 * client's. Properties: a mapped user has a non-empty id and username, at
 * most USERS_MAX_GROUPS groups each with an external id; a refusal says why;
 * the role is admin, teacher or student.
 *
 * Input: the userinfo response body.
 */
#include "arena.h"
#include "config.h"
#include "users.h"
#include "fuzz.h"

static struct config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cfg_defaults(&cfg);
    free(cfg.role_admin);
    free(cfg.role_teacher);
    cfg.role_admin = strdup("admins");
    cfg.role_teacher = strdup("lehrer");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (!j)
        return 0;
    arena_t a;
    arena_init(&a, 4096);
    struct claims *c = calloc(1, sizeof *c);
    const char *err = NULL;
    if (users_parse_claims(&a, j, c, &err) == 0) {
        FUZZ_ASSERT(c->user_id && *c->user_id, "user id");
        FUZZ_ASSERT(c->username && *c->username, "username");
        FUZZ_ASSERT(c->ngroups >= 0 && c->ngroups <= USERS_MAX_GROUPS, "group count");
        for (int i = 0; i < c->ngroups; i++)
            FUZZ_ASSERT(c->groups[i].external_id && *c->groups[i].external_id && c->groups[i].name,
                        "group");
        const char *role = users_role_for(&cfg, c);
        FUZZ_ASSERT(strcmp(role, "admin") == 0 || strcmp(role, "teacher") == 0 ||
                        strcmp(role, "student") == 0,
                    "role");
    } else {
        FUZZ_ASSERT(err && *err, "a refusal says why");
    }
    free(c);
    cJSON_Delete(j);
    arena_free(&a);
    return 0;
}
