/*
 * listen.h — the listening socket: bound from LISTEN (unix:/path or
 * host:port), or inherited on fd 0 from spawn-fcgi / lighttpd bin-path;
 * its owner, mode and backlog; and the honest length of its accept queue.
 */
#ifndef S4S_LISTEN_H
#define S4S_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

struct listener {
    int fd;
    bool is_unix;
    bool inherited;  /* came on fd 0: we did not bind it and must not unlink it */
    char *unix_path; /* malloc'd, for unlink at exit */
    char *display;   /* "unix:/run/s4s.sock", "127.0.0.1:9000", "fd 0 (inherited)" */
    int backlog;
};

/* True when fd 0 is a listening socket (FCGI_LISTENSOCK_FILENO). */
bool listen_fd0_is_socket(void);
/* Bind and listen. owner "user[:group]" or NULL; mode for unix sockets. The
 * socket is non-blocking (workers poll it). 0, or -1 with err filled. */
int listen_open(struct listener *l, const char *addr, int backlog, const char *owner, unsigned mode,
                char *err, size_t errlen);
int listen_inherit_fd0(struct listener *l, char *err, size_t errlen);
void listen_close(struct listener *l, bool unlink_path);
/* Connections waiting in the accept queue, or -1 when it can't be read. */
long listen_queue_length(const struct listener *l);

#endif
