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
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

static int report(long rc) {
    if (rc < 0)
        printf("errno %s\n", strerrorname_np(errno));
    else
        printf("ok\n");
    return 0;
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
    if (!strcmp(t, "kill") && argc > 2)
        return report(kill(atoi(argv[2]), 0));
    if (!strcmp(t, "euid")) {
        printf("%d\n", (int)geteuid());
        return 0;
    }
    fprintf(stderr, "escape: unknown test %s\n", t);
    return 2;
}
