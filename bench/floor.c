/*
 * The floor for `moat run -- true` on this machine: the least any sandbox
 * with moat's namespaces and layers must do, with no policy at all.
 *
 *   floor CMD [ARGS...]
 *
 * Creates the user, mount, pid, ipc, uts, cgroup and network namespaces,
 * builds a read-only view of / with the current directory writable, a
 * private /tmp, a /dev with six device nodes and a /proc, forks an init and
 * a command process, enforces a two-rule Landlock ruleset and a four-
 * instruction seccomp filter, and execs CMD. No configuration, no denied
 * paths, no protected paths, no audit, no loopback, no error reporting
 * beyond perror: a lower bound to compare moat against (BENCHMARKS.md),
 * not a sandbox.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what)
{
    perror(what);
    _exit(125);
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) < 0)
        die(path);
    close(fd);
}

/* Binds src at dst with the new mount API; read-only (recursively) or not. */
static void bind(const char *src, const char *dst, int read_only)
{
    int flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (read_only ? AT_RECURSIVE : 0);
    int tree = syscall(SYS_open_tree, AT_FDCWD, src, flags);
    if (tree < 0)
        die("open_tree");
    if (read_only) {
        struct mount_attr attr = {
            .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        };
        if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr))
            die("mount_setattr");
    }
    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH))
        die("move_mount");
    close(tree);
}

static void build_view(const char *workspace)
{
    static const char *nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    char path[4200];

    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
        die("make private");
    if (mount("tmpfs", "/tmp", "tmpfs", 0, "mode=0755"))
        die("staging tmpfs");
    if (mkdir("/tmp/root", 0755))
        die("mkdir");
    bind("/", "/tmp/root", 1);
    snprintf(path, sizeof path, "/tmp/root%s", workspace);
    bind(workspace, path, 0);
    if (mount("tmpfs", "/tmp/root/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"))
        die("tmp");
    if (mount("tmpfs", "/tmp/root/dev", "tmpfs", MS_NOSUID, "mode=0755"))
        die("dev");
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        char src[64];
        snprintf(src, sizeof src, "/dev/%s", nodes[i]);
        snprintf(path, sizeof path, "/tmp/root/dev/%s", nodes[i]);
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
        if (fd < 0)
            die("device mount point");
        close(fd);
        bind(src, path, 0);
    }
    if (mount("proc", "/tmp/root/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
        die("proc");
    if (chdir("/tmp/root") || syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH))
        die("pivot_root");
    if (chdir(workspace))
        die("chdir");
}

static void restrict_self(const char *workspace)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        die("no_new_privs");
    struct landlock_ruleset_attr ruleset = {.handled_access_fs = (1ULL << 16) - 1};
    int fd = syscall(SYS_landlock_create_ruleset, &ruleset, sizeof ruleset, 0);
    if (fd < 0)
        die("landlock_create_ruleset");
    struct landlock_path_beneath_attr rule = {
        .allowed_access = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE |
                          LANDLOCK_ACCESS_FS_READ_DIR,
    };
    rule.parent_fd = open("/", O_PATH | O_CLOEXEC);
    if (syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0))
        die("landlock_add_rule /");
    close(rule.parent_fd);
    rule.allowed_access = (1ULL << 16) - 1;
    rule.parent_fd = open(workspace, O_PATH | O_CLOEXEC);
    if (syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0))
        die("landlock_add_rule workspace");
    close(rule.parent_fd);
    if (syscall(SYS_landlock_restrict_self, fd, 0))
        die("landlock_restrict_self");
    close(fd);

    /* Refuses ptrace, allows the rest. */
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ptrace, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {sizeof code / sizeof code[0], code};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program))
        die("seccomp");
}

static int wait_for(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) < 0)
        die("waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
    char workspace[4096], map[64];
    if (argc < 2 || !getcwd(workspace, sizeof workspace)) {
        fprintf(stderr, "usage: floor CMD [ARGS...]\n");
        return 2;
    }
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                CLONE_NEWCGROUP | CLONE_NEWNET))
        die("unshare");
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "%d %d 1", uid, uid);
    write_file("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "%d %d 1", gid, gid);
    write_file("/proc/self/gid_map", map);

    pid_t init = fork();
    if (init < 0)
        die("fork");
    if (init == 0) {
        build_view(workspace);
        pid_t command = fork();
        if (command < 0)
            die("fork");
        if (command == 0) {
            restrict_self(workspace);
            execvp(argv[1], argv + 1);
            _exit(127);
        }
        _exit(wait_for(command));
    }
    return wait_for(init);
}
