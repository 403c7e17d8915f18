/* Escape attempts for hutch's security tests. Each subcommand tries one
 * thing and prints "ok" or "errno NAME" (plus details), exiting 0 either way
 * unless the arguments are wrong. The tests compare the result inside a
 * sandbox with the result without the protection. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <unistd.h>

static int report(long rc) {
    if (rc < 0)
        printf("errno %s\n", strerrorname_np(errno));
    else
        printf("ok\n");
    return 0;
}

/* io_uring with raw system calls (no liburing): one ring, one operation
 * at a time. The work is done by the kernel on the ring's behalf: no
 * socket, connect, sendto or openat2 system call is made. */
struct ring {
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
};

static int ring_setup(struct ring *r) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    r->fd = syscall(__NR_io_uring_setup, 4, &p);
    if (r->fd < 0)
        return -1;
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQ_RING);
    char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_CQ_RING);
    void *sqes = mmap(NULL, sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
        return -1;
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    r->sqes = sqes;
    return 0;
}

/* Submits `sqe` and waits for it: its result (a negative errno when the
 * operation failed), or INT32_MIN with errno set when the ring's own
 * system calls did. */
static int ring_do(struct ring *r, const struct io_uring_sqe *sqe) {
    unsigned tail = *r->sq_tail, i = tail & *r->sq_mask;
    r->sqes[i] = *sqe;
    r->sq_array[i] = i;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
        return INT32_MIN;
    unsigned head = *r->cq_head;
    while (__atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) == head)
        ;
    int res = r->cqes[head & *r->cq_mask].res;
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return res;
}

/* Reports an operation's failure, or "unsupported" for an operation this
 * kernel does not have; returns whether it succeeded. */
static int op_ok(const char *op, int res) {
    if (res == INT32_MIN)
        report(-1);
    else if (res == -EINVAL)
        printf("unsupported %s\n", op);
    else if (res < 0)
        printf("%s errno %s\n", op, strerrorname_np(-res));
    return res >= 0;
}

/* A TCP connection to 127.0.0.1:PORT that sends MSG, all through io_uring
 * (IORING_OP_SOCKET needs Linux 5.19). */
static int uring_send(int port, const char *msg) {
    struct ring r;
    if (ring_setup(&r) < 0)
        return report(-1);
    struct io_uring_sqe sqe = {.opcode = IORING_OP_SOCKET, .fd = AF_INET, .off = SOCK_STREAM};
    int s = ring_do(&r, &sqe);
    if (!op_ok("socket", s))
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sqe = (struct io_uring_sqe){.opcode = IORING_OP_CONNECT, .fd = s, .addr = (uintptr_t)&a, .off = sizeof a};
    if (!op_ok("connect", ring_do(&r, &sqe)))
        return 0;
    sqe = (struct io_uring_sqe){.opcode = IORING_OP_SEND, .fd = s, .addr = (uintptr_t)msg, .len = strlen(msg)};
    if (!op_ok("send", ring_do(&r, &sqe)))
        return 0;
    return report(0);
}

/* Opens PATH and reads from it through io_uring (IORING_OP_OPENAT2, Linux
 * 5.6): the probe for kernels without IORING_OP_SOCKET. */
static int uring_openat2(const char *path) {
    struct ring r;
    if (ring_setup(&r) < 0)
        return report(-1);
    struct open_how how = {.flags = O_RDONLY};
    struct io_uring_sqe sqe = {.opcode = IORING_OP_OPENAT2, .fd = AT_FDCWD, .addr = (uintptr_t)path,
                               .len = sizeof how, .off = (uintptr_t)&how};
    int fd = ring_do(&r, &sqe);
    if (!op_ok("openat2", fd))
        return 0;
    char buf[16];
    sqe = (struct io_uring_sqe){.opcode = IORING_OP_READ, .fd = fd, .addr = (uintptr_t)buf, .len = sizeof buf};
    if (!op_ok("read", ring_do(&r, &sqe)))
        return 0;
    return report(0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: escape TEST [ARGS]\n");
        return 2;
    }
    const char *t = argv[1];
    if (!strcmp(t, "tiocsti")) {
        char c = 'x';
        unsigned long req = TIOCSTI;
        if (argc > 2 && !strcmp(argv[2], "hibits"))
            req |= 0xdead00000000UL;
        return report(syscall(SYS_ioctl, 0, req, &c));
    }
    if (!strcmp(t, "tioclinux")) {
        char sub = 6; /* TIOCL_GETSHIFTSTATE: harmless, but TIOCLINUX all the same */
        return report(syscall(SYS_ioctl, 0, TIOCLINUX, &sub));
    }
    if (!strcmp(t, "ptrace") && argc > 2) {
        pid_t pid = atoi(argv[2]);
        long rc = ptrace(PTRACE_SEIZE, pid, 0, 0);
        if (rc == 0)
            ptrace(PTRACE_DETACH, pid, 0, 0);
        return report(rc);
    }
    if (!strcmp(t, "mount"))
        return report(mount("none", argc > 2 ? argv[2] : "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(t, "umount") && argc > 2)
        return report(umount2(argv[2], MNT_DETACH));
    if (!strcmp(t, "keyctl")) /* an operation that does not exist */
        return report(syscall(SYS_keyctl, 9999, 0, 0, 0, 0));
    if (!strcmp(t, "bpf")) /* a bad attribute pointer with a non-zero tail */
        return report(syscall(SYS_bpf, 0, (void *)8, 65536));
    if (!strcmp(t, "perf")) /* a NULL attribute */
        return report(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    if (!strcmp(t, "userfaultfd")) /* user-mode-only plus an invalid flag */
        return report(syscall(SYS_userfaultfd, 1 | 0x40000000));
    if (!strcmp(t, "open_by_handle_at")) /* a bad mount fd */
        return report(syscall(SYS_open_by_handle_at, -1, NULL, 0));
    if (!strcmp(t, "x32")) /* getpid through the x32 ABI */
        return report(syscall(0x40000000 | 39));
    if (!strcmp(t, "userns"))
        return report(unshare(CLONE_NEWUSER));
    if (!strcmp(t, "clone3"))
        return report(syscall(SYS_clone3, NULL, 0));
    if (!strcmp(t, "write") && argc > 3) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            return report(-1);
        long rc = write(fd, argv[3], strlen(argv[3]));
        close(fd);
        return report(rc);
    }
    if (!strcmp(t, "connect") && argc > 2) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return report(connect(s, (struct sockaddr *)&a, sizeof a));
    }
    if (!strcmp(t, "abstract") && argc > 2) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        size_t n = strlen(argv[2]);
        memcpy(a.sun_path + 1, argv[2], n);
        return report(connect(s, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + n));
    }
    if (!strcmp(t, "loopback")) { /* a TCP connection over 127.0.0.1 */
        int l = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
            getsockname(l, (struct sockaddr *)&a, &len) < 0)
            return report(-1);
        int c = socket(AF_INET, SOCK_STREAM, 0);
        return report(connect(c, (struct sockaddr *)&a, sizeof a));
    }
    if (!strcmp(t, "uring-send") && argc > 3)
        return uring_send(atoi(argv[2]), argv[3]);
    if (!strcmp(t, "uring-openat2") && argc > 2)
        return uring_openat2(argv[2]);
    if (!strcmp(t, "kill") && argc > 2)
        return report(kill(atoi(argv[2]), 0));
    if (!strcmp(t, "euid")) {
        printf("%d\n", (int)geteuid());
        return 0;
    }
    fprintf(stderr, "escape: unknown test %s\n", t);
    return 2;
}
