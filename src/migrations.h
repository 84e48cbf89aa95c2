/*
 * migrations.h — the schema migrations compiled into the binaries.
 * sql/embed-migrations.sh generates src/migrations_gen.c from sql/NNN_*.sql at
 * build time; db_migrate (db.c) applies them in array order, each in
 * its own transaction, so a file must not contain BEGIN or COMMIT. A line
 * starting with "--@ " is a directive for the runner, executed in place:
 *   --@ add-column <table> <column> <definition…>   (only if the column is missing)
 */
#ifndef S4S_MIGRATIONS_H
#define S4S_MIGRATIONS_H

#include <stddef.h>

struct migration {
    const char *name; /* file basename without .sql, e.g. "001_upstream_schema" */
    const char *sql;  /* the file's text: SQL statements and --@ directive lines */
};

/* SQLite's (sql/NNN_*.sql) and PostgreSQL's (sql/pg/NNN_*.sql): the same names,
 * each file spelling the same schema in its dialect. */
extern const struct migration s4s_migrations[];
extern const size_t s4s_migrations_count;
extern const struct migration s4s_pg_migrations[];
extern const size_t s4s_pg_migrations_count;

#endif
