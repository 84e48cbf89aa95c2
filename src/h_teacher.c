/*
 * h_teacher.c — the Teacher view of API.md: the students a teacher (or
 * admin) may look at, with their project counts, and one student's
 * projects (their summaries come from projects.c).
 *
 * Who is listed: a teacher sees every student of the school, not only the
 * students of the teacher's own groups — the Flask backend did so and the
 * frontend's teacher page expects it. An admin sees students and teachers.
 * A user whose role column is empty (an adopted upstream row) counts as a
 * student, as session.c reads it. The same rule decides whose projects
 * /students/<id>/projects shows, so an id outside the list is "not found".
 */
#include "db.h"
#include "log.h"
#include "projects.h"
#include "request.h"
#include "response.h"
#include "routes.h"
#include "session.h"
#include "util.h"

#include <string.h>

/* The role besides "student" the caller may see, or NULL when the caller
 * may not use the teacher view at all. Teachers: students only, so the
 * second role is "student" again. */
static const char *visible_role(const struct request *r)
{
    const char *role = r->sess->role;
    if (strcmp(role, "admin") == 0)
        return "teacher";
    if (strcmp(role, "teacher") == 0)
        return "student";
    return NULL;
}

static void db_failed(struct request *r, int rc, const char *what)
{
    if (rc == DB_BUSY || rc == DB_FULL || rc == DB_UNAVAILABLE) {
        resp_db_err(r, rc);
        return;
    }
    log_errx("teacher view: %s: database error %d", what, rc);
    resp_err(r, ERR_INTERNAL, NULL);
}

void h_teacher_students(struct request *r)
{
    const char *other_role = visible_role(r);
    if (!other_role) {
        resp_err(r, ERR_FORBIDDEN, "Admin or Teacher privileges required");
        return;
    }
    /* One query for all counts: soft-deleted projects are not counted. */
    struct db_stmt *st =
        db_prepare(r->srv->db, "SELECT u.id, u.username, COUNT(p.id) FROM users u "
                               "LEFT JOIN projects p ON p.owner_id = u.id AND p.deleted_at IS NULL "
                               "WHERE COALESCE(NULLIF(u.role, ''), 'student') IN ('student', ?) "
                               "GROUP BY u.id, u.username ORDER BY LOWER(u.username), u.id");
    if (!st) {
        resp_err(r, ERR_INTERNAL, NULL);
        return;
    }
    db_bind_text(st, 1, other_role);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "students");
    int n = 0, rc;
    while ((rc = db_step(st)) == DB_ROW) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "id", db_column_text(st, 0));
        cJSON_AddStringToObject(s, "username", db_column_text(st, 1));
        cJSON_AddNumberToObject(s, "project_count", (double)db_column_int64(st, 2));
        cJSON_AddItemToArray(arr, s);
        n++;
    }
    if (rc != DB_OK) {
        db_reset(st);
        cJSON_Delete(o);
        db_failed(r, rc, "listing students");
        return;
    }
    cJSON_AddNumberToObject(o, "count", n);
    resp_json(r, 200, o);
}

void h_teacher_student_projects(struct request *r)
{
    const char *other_role = visible_role(r);
    if (!other_role) {
        resp_err(r, ERR_FORBIDDEN, "Admin or Teacher privileges required");
        return;
    }
    const char *student_id = req_capture(r, 0);
    struct db_stmt *st = db_prepare(
        r->srv->db, "SELECT id, username FROM users "
                    "WHERE id = ? AND COALESCE(NULLIF(role, ''), 'student') IN ('student', ?)");
    if (!st) {
        resp_err(r, ERR_INTERNAL, NULL);
        return;
    }
    db_bind_text(st, 1, student_id);
    db_bind_text(st, 2, other_role);
    int rc = db_step(st);
    if (rc == DB_OK) {
        resp_err(r, ERR_NOT_FOUND, "Student not found");
        return;
    }
    if (rc != DB_ROW) {
        db_failed(r, rc, "looking up a student");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *s = cJSON_AddObjectToObject(o, "student");
    cJSON_AddStringToObject(s, "id", db_column_text(st, 0));
    cJSON_AddStringToObject(s, "username", db_column_text(st, 1));
    db_reset(st);
    cJSON *projects = proj_summaries_for_owner(r, student_id);
    if (!projects) {
        cJSON_Delete(o);
        resp_err(r, ERR_INTERNAL, NULL); /* logged by the driver */
        return;
    }
    cJSON_AddItemToObject(o, "projects", projects);
    cJSON_AddNumberToObject(o, "count", cJSON_GetArraySize(projects));
    resp_json(r, 200, o);
}
