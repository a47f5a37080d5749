/*
 * The native command executor's program (lib/mesos-executor): the launcher spawns it, it sets itself up
 * for its container as zygote._child does, then runs the executor (executor.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "executor.h"

#define MAX_CGROUPS 64
#define MAX_GROUPS 4096

/* zygote._reason's words, to the report pipe and to stderr (as zygote._child). */
_Noreturn static void fail(int report, const char *format, ...) {
    char reason[4096];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    ssize_t w = write(report, reason, strlen(reason));
    char line[4200];
    int n = snprintf(line, sizeof line, "mesos-executor: failed to start: %s\n", reason);
    w = write(2, line, n > 0 ? (size_t)n : 0);
    (void)w;
    _exit(127);
}

static void close_from(unsigned first, unsigned last) {
    if (first > last)
        return;
    if (syscall(SYS_close_range, first, last, 0) == 0)
        return;
    for (unsigned fd = first; fd <= last && fd < 65536; fd++)
        close((int)fd);
}

static const char *arg(char ***argv) { return **argv ? *(*argv)++ : NULL; }

/*
 * The launcher spawns this program (posix_spawn: no fork of the launcher's memory) as
 *   mesos-executor mesostw-native-1 REPORT_FD STDOUT STDERR CWD PREAMBLE UID GID GROUPS NCGROUPS CGROUP.PROCS...
 * (UID empty: no switch; GROUPS: the user's group IDs, comma-separated, looked up by the launcher) with
 * the executor's environment as its own. It sets itself up as zygote._child does (cgroups, session,
 * files, descriptors, directory, user), writing to REPORT_FD why it could not, then runs the executor.
 */
int main(int argc, char **argv, char **envp) {
    (void)argc;
    char **rest = argv + 1;
    const char *version = arg(&rest), *fd = arg(&rest);
    if (version == NULL || strcmp(version, "mesostw-native-1") != 0 || fd == NULL) {
        static const char usage[] = "mesos-executor: only the agent's launcher starts it\n";
        ssize_t w = write(2, usage, sizeof usage - 1);
        (void)w;
        return 2;
    }
    int report = atoi(fd);
    if (report < 3)
        return 2;
    const char *out = arg(&rest), *err = arg(&rest), *cwd = arg(&rest), *preamble = arg(&rest);
    const char *uid = arg(&rest), *gid = arg(&rest), *groups = arg(&rest), *count = arg(&rest);
    if (count == NULL)
        fail(report, "cannot run the executor: malformed command line");
    /* What the launcher ignores goes back to its default (SIGPIPE is ignored again by the executor
     * itself; SIGXFSZ stays ignored, as in any Python process). */
    static const int defaults[] = {SIGCHLD, SIGTERM, SIGINT, SIGPIPE, SIGHUP};
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (size_t k = 0; k < sizeof defaults / sizeof defaults[0]; k++)
        sigaction(defaults[k], &dfl, NULL);
    /* Join the container's cgroups while still root, before anything of the task's runs. */
    char pid[32];
    int plen = snprintf(pid, sizeof pid, "%d", (int)getpid());
    long ncgroups = strtol(count, NULL, 10);
    for (long k = 0; k < ncgroups; k++) {
        const char *procs = arg(&rest);
        if (procs == NULL)
            fail(report, "cannot run the executor: malformed command line");
        int cg = open(procs, O_WRONLY | O_CLOEXEC);
        int error = cg < 0 ? errno : 0;
        if (cg >= 0 && write(cg, pid, (size_t)plen) < 0)
            error = errno;
        if (cg >= 0 && close(cg) < 0 && !error)
            error = errno;
        if (error) {
            const char *slash = strrchr(procs, '/');
            int dlen = slash == NULL ? 0 : slash == procs ? 1 : (int)(slash - procs);
            fail(report, "cannot join the cgroup %.*s: %s", dlen, procs, strerror(error));
        }
    }
    if (setsid() < 0)
        fail(report, "cannot run the executor: %s", strerror(errno));
    int null = open("/dev/null", O_RDONLY);
    if (null < 0)
        fail(report, "cannot run /dev/null: %s", strerror(errno));
    int outfd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (outfd < 0)
        fail(report, "cannot run %s: %s", out, strerror(errno));
    int errfd = open(err, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (errfd < 0)
        fail(report, "cannot run %s: %s", err, strerror(errno));
    if (dup2(null, 0) < 0 || dup2(outfd, 1) < 0 || dup2(errfd, 2) < 0)
        fail(report, "cannot run the executor: %s", strerror(errno));
    close_from(3, (unsigned)report - 1);
    close_from((unsigned)report + 1, ~0u);
    if (chdir(cwd) < 0)
        fail(report, "cannot run %s: %s", cwd, strerror(errno));
    if (*uid) {
        /* The groups come from the launcher (os.getgrouplist, as initgroups reads them): no name service here. */
        static gid_t list[MAX_GROUPS];
        size_t n = 0;
        for (const char *p = groups; *p && n < MAX_GROUPS;) {
            char *stop;
            list[n++] = (gid_t)strtoul(p, &stop, 10);
            p = *stop == ',' ? stop + 1 : stop;
            if (stop == p && *p)
                break;
        }
        if (setgroups(n, list) < 0 || setgid((gid_t)strtoul(gid, NULL, 10)) < 0 ||
            setuid((uid_t)strtoul(uid, NULL, 10)) < 0)
            fail(report, "cannot run the executor: %s", strerror(errno));
    }
    close(report);
    return run_executor(envp, preamble);
}
