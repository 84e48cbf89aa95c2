/*
 * main.c — s4s-fcgi: command line, configuration, the listening socket
 * (bound or inherited on fd 0), privilege drop, migrations, then the
 * process manager. Read pm.c next, then worker.c for a request's path.
 */
#include "config.h"
#include "listen.h"
#include "log.h"
#include "pm.h"
#include "scoreboard.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: s4s-fcgi [-Ft] [-c file] [-l unix:/path | host:port] [-n workers]\n"
                 "                [-u user] [-p pidfile]\n"
                 "  -c file   configuration file (KEY=VALUE; see s4s.conf(5))\n"
                 "  -l addr   listen address; without it a socket on fd 0 is used\n"
                 "  -n N      number of worker processes (WORKERS)\n"
                 "  -F        stay in the foreground\n"
                 "  -u user   drop privileges to user after binding (RUN_AS)\n"
                 "  -p file   write the master's pid to file\n"
                 "  -t        check the configuration and exit\n");
}

/* RUN_AS is "user" or "user:group". */
static int drop_privileges(const char *spec)
{
    char user[256];
    snprintf(user, sizeof user, "%s", spec);
    char *group = strchr(user, ':');
    if (group)
        *group++ = '\0';
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        log_errx("-u %s: no such user", user);
        return -1;
    }
    gid_t gid = pw->pw_gid;
    if (group && *group) {
        struct group *gr = getgrnam(group);
        if (!gr) {
            log_errx("-u %s: no such group %s", spec, group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (getuid() != 0) {
        if (getuid() == pw->pw_uid)
            return 0;
        log_errx("-u %s: only root can change user", user);
        return -1;
    }
    if (initgroups(pw->pw_name, gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
        log_err("dropping privileges to %s", user);
        return -1;
    }
    if (setuid(0) == 0) { /* must be impossible now */
        log_errx("privilege drop to %s did not stick", user);
        return -1;
    }
    log_info("running as %s (uid %d, gid %d)", user, (int)pw->pw_uid, (int)gid);
    return 0;
}

static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

static int write_pidfile(const char *path)
{
    char *tmp = xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    int rc = -1;
    if (!f)
        goto out;
    fprintf(f, "%d\n", (int)getpid());
    if (fclose(f) != 0)
        goto out;
    rc = rename(tmp, path);
out:
    if (rc < 0)
        log_warn("writing pid file %s", path);
    free(tmp);
    return rc;
}

int main(int argc, char **argv)
{
    struct pm_options opt = {0};
    bool foreground = false, check_only = false;
    const char *pidfile = NULL;
    int ch;
    opt.config_path = NULL;
    while ((ch = getopt(argc, argv, "c:l:n:u:p:Fth")) != -1) {
        const char *key = NULL;
        switch (ch) {
        case 'c':
            opt.config_path = optarg;
            break;
        case 'l':
            key = "LISTEN";
            break;
        case 'n':
            key = "WORKERS";
            break;
        case 'u':
            key = "RUN_AS";
            break;
        case 'p':
            pidfile = optarg;
            break;
        case 'F':
            foreground = true;
            break;
        case 't':
            check_only = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (key) {
            if (opt.noverrides >= PM_MAX_OVERRIDES) {
                usage(stderr);
                return 2;
            }
            opt.overrides[opt.noverrides].key = key;
            opt.overrides[opt.noverrides].value = optarg;
            opt.noverrides++;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!opt.config_path && getenv("S4S_CONFIG") && *getenv("S4S_CONFIG"))
        opt.config_path = getenv("S4S_CONFIG");

    log_set_role("master");
    struct config cfg;
    char err[512];
    if (pm_load_config(&opt, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "s4s-fcgi: %s\n", err);
        return 1;
    }
    if (check_only) {
        printf("s4s-fcgi: configuration %s is valid\n",
               opt.config_path ? opt.config_path : "(defaults and environment)");
        cfg_free(&cfg);
        return 0;
    }
    log_set_level(cfg.log_level);
    if (cfg.log_file && log_open_file(cfg.log_file) < 0)
        fatal("opening LOG_FILE %s", cfg.log_file);

    struct listener l;
    if (cfg.listen) {
        if (listen_open(&l, cfg.listen, cfg.listen_backlog, cfg.listen_owner, cfg.listen_mode, err,
                        sizeof err) < 0)
            fatalx("%s", err);
    } else if (listen_fd0_is_socket()) {
        if (listen_inherit_fd0(&l, err, sizeof err) < 0)
            fatalx("%s", err);
        foreground = true; /* lighttpd and spawn-fcgi watch the pid they started */
    } else {
        fatalx("no LISTEN address and fd 0 is not a listening socket (use -l, LISTEN=, or "
               "start under spawn-fcgi)");
    }
    if (cfg.user && *cfg.user && drop_privileges(cfg.user) < 0)
        exit(1);
    if (mkdir_p(cfg.data_dir, 0750) < 0)
        fatal("creating DATA_DIR %s", cfg.data_dir);
    if (pm_migrate(&cfg) < 0)
        exit(1);
    struct scoreboard *sb = sb_create();
    if (!sb)
        fatal("creating the scoreboard");
    if (!foreground && daemonize() < 0)
        fatal("daemonize");
    if (pidfile && write_pidfile(pidfile) < 0)
        exit(1);
    int rc = pm_run(&cfg, &l, sb, &opt);
    listen_close(&l, true);
    if (pidfile)
        unlink(pidfile);
    sb_destroy(sb);
    return rc;
}
