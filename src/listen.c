/*
 * listen.c — binding, inheriting and measuring the listening socket.
 * The queue length comes from TCP_INFO for TCP and from the kernel's
 * sock_diag for unix sockets, so /status never reads 0 while clients wait
 * (php-fpm's listen queue is always 0 on unix sockets).
 */
#include "listen.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

bool listen_fd0_is_socket(void)
{
    int accepting = 0;
    socklen_t len = sizeof accepting;
    if (getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) < 0)
        return false;
    return accepting != 0;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

static int chown_socket(const char *path, const char *owner, char *err, size_t errlen)
{
    char *copy = xstrdup(owner);
    char *group = strchr(copy, ':');
    if (group)
        *group++ = '\0';
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    int rc = -1;
    if (*copy) {
        struct passwd *pw = getpwnam(copy);
        if (!pw) {
            snprintf(err, errlen, "LISTEN_OWNER: no such user '%s'", copy);
            goto out;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    if (group && *group) {
        struct group *gr = getgrnam(group);
        if (!gr) {
            snprintf(err, errlen, "LISTEN_OWNER: no such group '%s'", group);
            goto out;
        }
        gid = gr->gr_gid;
    }
    if (chown(path, uid, gid) < 0) {
        snprintf(err, errlen, "chown %s to %s: %s", path, owner, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

static int open_unix(struct listener *l, const char *path, int backlog, const char *owner,
                     unsigned mode, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "LISTEN: unix socket path too long: %s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* A stale socket from a crash would make bind fail; a live one must not be stolen. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        snprintf(err, errlen, "LISTEN: %s is in use by a running server", path);
        close(fd);
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "LISTEN: %s exists and is not a socket", path);
            close(fd);
            return -1;
        }
        unlink(path);
    }
    mode_t old = umask(0177); /* never world-connectable between bind and chmod */
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (chmod(path, mode) < 0) {
        snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
        goto fail;
    }
    if (owner && *owner && chown_socket(path, owner, err, errlen) < 0)
        goto fail;
    if (listen(fd, backlog) < 0) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        goto fail;
    }
    l->fd = fd;
    l->is_unix = true;
    l->unix_path = xstrdup(path);
    l->display = xasprintf("unix:%s", path);
    return 0;
fail:
    close(fd);
    unlink(path);
    return -1;
}

static int open_tcp(struct listener *l, const char *addr, int backlog, char *err, size_t errlen)
{
    char *host = xstrdup(addr);
    char *port = strrchr(host, ':');
    int rc = -1, fd = -1;
    struct addrinfo *res = NULL;
    if (!port) {
        snprintf(err, errlen, "LISTEN: expected host:port, got '%s'", addr);
        goto out;
    }
    *port++ = '\0';
    char *h = host;
    if (*h == '[') { /* [::1]:9000 */
        h++;
        size_t hl = strlen(h);
        if (hl > 0 && h[hl - 1] == ']')
            h[hl - 1] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    int g = getaddrinfo(*h ? h : NULL, port, &hints, &res);
    if (g != 0) {
        snprintf(err, errlen, "LISTEN %s: %s", addr, gai_strerror(g));
        goto out;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto out;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        snprintf(err, errlen, "bind %s: %s", addr, strerror(errno));
        goto out;
    }
    if (listen(fd, backlog) < 0) {
        snprintf(err, errlen, "listen %s: %s", addr, strerror(errno));
        goto out;
    }
    l->fd = fd;
    fd = -1;
    l->is_unix = false;
    l->display = xstrdup(addr);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (res)
        freeaddrinfo(res);
    free(host);
    return rc;
}

int listen_open(struct listener *l, const char *addr, int backlog, const char *owner, unsigned mode,
                char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    l->fd = -1;
    l->backlog = backlog;
    int rc = strncmp(addr, "unix:", 5) == 0
                 ? open_unix(l, addr + 5, backlog, owner, mode, err, errlen)
                 : open_tcp(l, addr, backlog, err, errlen);
    if (rc == 0 && set_nonblock(l->fd) < 0) {
        snprintf(err, errlen, "fcntl O_NONBLOCK: %s", strerror(errno));
        listen_close(l, true);
        return -1;
    }
    return rc;
}

int listen_inherit_fd0(struct listener *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    /* Move it off fd 0 so stdin can be /dev/null like any daemon's. */
    int fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        snprintf(err, errlen, "dup fd 0: %s", strerror(errno));
        return -1;
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, 0);
        if (devnull != 0)
            close(devnull);
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX) {
        l->is_unix = true;
        struct sockaddr_un *su = (struct sockaddr_un *)&ss;
        l->display = xasprintf("unix:%s (inherited on fd 0)", su->sun_path);
    } else {
        l->display = xstrdup("tcp (inherited on fd 0)");
    }
    l->fd = fd;
    l->inherited = true;
    l->backlog = -1;
    if (set_nonblock(fd) < 0) {
        snprintf(err, errlen, "fcntl O_NONBLOCK: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void listen_close(struct listener *l, bool unlink_path)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (unlink_path && l->unix_path && !l->inherited)
        unlink(l->unix_path);
    free(l->unix_path);
    free(l->display);
    l->unix_path = NULL;
    l->display = NULL;
}

/* Ask the kernel (sock_diag) for a unix listening socket's pending connections. */
static long unix_queue_length(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return -1;
    struct {
        struct nlmsghdr nlh;
        struct unix_diag_req req;
    } msg;
    memset(&msg, 0, sizeof msg);
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST;
    msg.req.sdiag_family = AF_UNIX;
    msg.req.udiag_states = 1 << 10; /* TCP_LISTEN */
    msg.req.udiag_ino = (unsigned)st.st_ino;
    msg.req.udiag_cookie[0] = msg.req.udiag_cookie[1] = ~0U; /* INET_DIAG_NOCOOKIE */
    msg.req.udiag_show = UDIAG_SHOW_RQLEN;
    long result = -1;
    if (send(nl, &msg, sizeof msg, 0) < 0)
        goto out;
    char buf[1024] __attribute__((aligned(NLMSG_ALIGNTO)));
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    if (n <= 0)
        goto out;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n);
         h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
            break;
        struct unix_diag_msg *um = NLMSG_DATA(h);
        int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *um));
        struct rtattr *a = (struct rtattr *)(um + 1);
        for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
            if (a->rta_type == UNIX_DIAG_RQLEN) {
                struct unix_diag_rqlen *rq = RTA_DATA(a);
                result = (long)rq->udiag_rqueue;
                goto out;
            }
        }
    }
out:
    close(nl);
    return result;
}

long listen_queue_length(const struct listener *l)
{
    if (l->fd < 0)
        return -1;
    if (l->is_unix)
        return unix_queue_length(l->fd);
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(l->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return -1;
    return (long)ti.tcpi_unacked; /* for a listener: connections waiting to be accepted */
}
