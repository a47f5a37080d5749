/*
 * The native command executor (lib/mesos-executor): what mesostw/executor/command.py's CommandExecutor
 * does for a plain command task (no health check, no TLS), in C. The launcher spawns it (vfork and
 * exec: nothing of the launcher's memory is copied, and no Python runs), it sets itself up for its
 * container as zygote._child does (main.c), then this speaks the v1 executor API to its agent
 * (RecordIO over the agent's executor stream, codec.c) and runs the task's command.
 *
 * Linked statically when the C library allows (an exec then costs no dynamic loading); it uses no
 * name service (the launcher looks up the user's groups, the agent's endpoint is an IP address).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "executor.h"

#define SECRET_VARIABLE "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
#define DEFAULT_GRACE 3.0
#define RECONNECT_INTERVAL 0.5
#define EXIT_TIMEOUT 5.0
#define CONNECT_TIMEOUT 10.0
#define MAX_UNACKED 8

/* ------------------------------------------------------------------ the executor */

enum { T_RECONNECT, T_SIGKILL, T_GIVE_UP, TIMERS };

typedef struct {
    char uuid[32];
    char *json; /* the TaskStatus JSON */
} unacked_t;

typedef struct {
    char *const *env; /* the executor's environment, NULL-terminated */
    const char *preamble;
    char host[256];
    int port;
    const char *framework_id, *executor_id, *secret;
    int checkpoint;
    double recovery_timeout, shutdown_grace, backoff_max;
    int sock;
    buf_t in;
    jdoc doc;
    buf_t task;           /* the task's JSON as received, empty before LAUNCH */
    buf_t task_id;        /* its task_id's JSON */
    buf_t task_id_value;  /* and that id's value */
    double task_grace;    /* the task's kill_policy grace period, NAN if none */
    int task_acknowledged;
    pid_t pid;
    int pidfd;
    int killing;
    char final_uuid[32];
    unacked_t unacked[MAX_UNACKED];
    int exit_code; /* -1 while running */
    double lost_since; /* -1 while connected */
    double timers[TIMERS]; /* deadlines (monotonic), -1 when unarmed */
    uint64_t timer_seq[TIMERS], seq;
    buf_t scratch, out;
} executor_t;

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void log_line(const char *format, ...) {
    char line[4096];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S mesos-executor: ", &tm);
    va_list args;
    va_start(args, format);
    int more = vsnprintf(line + n, sizeof line - n - 1, format, args);
    va_end(args);
    if (more < 0)
        more = 0;
    n += (size_t)more < sizeof line - n - 1 ? (size_t)more : sizeof line - n - 2;
    line[n++] = '\n';
    ssize_t w = write(2, line, n);
    (void)w;
}

static const char *env_get(char *const *env, const char *name) {
    size_t len = strlen(name);
    const char *found = NULL;
    for (; env != NULL && *env != NULL; env++)
        if (strncmp(*env, name, len) == 0 && (*env)[len] == '=')
            found = *env + len + 1; /* the last one, as a dict built from them keeps */
    return found;
}

/* command.duration: "<number><unit>" (ns us ms secs mins hrs days weeks; none is secs), else ``fallback``. */
static double duration(const char *text, double fallback) {
    if (text == NULL)
        return fallback;
    const char *p = text;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
        p++;
    const char *digits = p;
    while ((*p >= '0' && *p <= '9') || *p == '.')
        p++;
    if (p == digits)
        return fallback;
    char number[64];
    if ((size_t)(p - digits) >= sizeof number)
        return fallback;
    memcpy(number, digits, (size_t)(p - digits));
    number[p - digits] = 0;
    char *stop;
    double value = strtod(number, &stop);
    if (*stop != 0)
        return fallback; /* "1.2.3": Python's float() refuses it */
    while (*p == ' ' || *p == '\t')
        p++;
    const char *unit = p;
    while (*p >= 'a' && *p <= 'z')
        p++;
    size_t ulen = (size_t)(p - unit);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
        p++;
    if (*p != 0)
        return fallback;
    static const struct { const char *name; double seconds; } units[] = {
        {"ns", 1e-9}, {"us", 1e-6}, {"ms", 1e-3}, {"secs", 1.0}, {"mins", 60.0}, {"hrs", 3600.0},
        {"days", 86400.0}, {"weeks", 604800.0}};
    if (ulen == 0)
        return value;
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
        if (strlen(units[u].name) == ulen && memcmp(units[u].name, unit, ulen) == 0)
            return value * units[u].seconds;
    return value; /* an unknown unit counts as seconds, as in Python */
}

static const char *signal_name(int signum, char *spare, size_t size) {
    static const char *const names[] = {
        NULL, "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL",
        "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT",
        "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF",
        "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS"};
    if (signum > 0 && signum < (int)(sizeof names / sizeof names[0]))
        return names[signum];
    if (signum == SIGRTMIN)
        return "SIGRTMIN";
    if (signum == SIGRTMAX)
        return "SIGRTMAX";
    snprintf(spare, size, "%d", signum);
    return spare;
}

static void later(executor_t *x, int timer, double delay) {
    x->timers[timer] = monotonic() + delay;
    x->timer_seq[timer] = ++x->seq;
}

/* ---- the agent's connection */

static int send_all(int sock, const char *data, size_t n) {
    while (n > 0) {
        ssize_t w = send(sock, data, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

static void record_of(buf_t *out, const buf_t *body) {
    buf_clear(out);
    buf_printf(out, "%zu\n", body->len);
    buf_add(out, body->data ? body->data : "", body->len);
}

/* The Call envelope's start: {"type": ..., "framework_id": ..., "executor_id": ... */
static void envelope(executor_t *x, buf_t *out, const char *kind) {
    buf_clear(out);
    buf_str(out, "{\"type\": ");
    json_cstr(out, kind);
    buf_str(out, ", \"framework_id\": {\"value\": ");
    json_cstr(out, x->framework_id);
    buf_str(out, "}, \"executor_id\": {\"value\": ");
    json_cstr(out, x->executor_id);
    buf_str(out, "}");
}

static void call(executor_t *x, const buf_t *body) {
    if (x->sock < 0)
        return;
    record_of(&x->out, body);
    /* If the agent is gone, unacknowledged updates go again with the next SUBSCRIBE. */
    send_all(x->sock, x->out.data, x->out.len);
}

/* A connection to the agent, or -1 with ``why`` set as Python's OSError would say it. */
static int agent_connect(executor_t *x, char *why, size_t size) {
    struct sockaddr_storage address;
    socklen_t length;
    memset(&address, 0, sizeof address);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address;
    if (inet_pton(AF_INET, x->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)x->port);
        length = sizeof *v4;
    } else if (inet_pton(AF_INET6, x->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)x->port);
        length = sizeof *v6;
    } else {
        /* The agent starts this executor only when its endpoint is an IP address (no resolver here). */
        snprintf(why, size, "[Errno %d] %s", EAFNOSUPPORT, "not an IP address: " );
        strncat(why, x->host, size - strlen(why) - 1);
        return -1;
    }
    int sock = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sock < 0) {
        snprintf(why, size, "[Errno %d] %s", errno, strerror(errno));
        return -1;
    }
    int rc = connect(sock, (struct sockaddr *)&address, length);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd p = {sock, POLLOUT, 0};
        double until = monotonic() + CONNECT_TIMEOUT;
        int ready;
        do {
            double left = until - monotonic();
            ready = poll(&p, 1, left > 0 ? (int)(left * 1000) + 1 : 0);
        } while (ready < 0 && errno == EINTR);
        if (ready == 0) {
            close(sock);
            snprintf(why, size, "timed out");
            return -1;
        }
        int error = 0;
        socklen_t elen = sizeof error;
        getsockopt(sock, SOL_SOCKET, SO_ERROR, &error, &elen);
        errno = error;
        rc = error ? -1 : 0;
    }
    if (rc < 0) {
        snprintf(why, size, "[Errno %d] %s", errno, strerror(errno));
        close(sock);
        return -1;
    }
    fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return sock;
}

static void kill_now(executor_t *x);
static void disconnected(executor_t *x, const char *why);

static void subscribe(executor_t *x) {
    buf_t body = {0};
    envelope(x, &body, "SUBSCRIBE");
    buf_str(&body, ", \"subscribe\": {\"unacknowledged_tasks\": [");
    if (x->task.len && !x->task_acknowledged)
        buf_add(&body, x->task.data, x->task.len);
    buf_str(&body, "], \"unacknowledged_updates\": [");
    int first = 1;
    for (int u = 0; u < MAX_UNACKED; u++) {
        if (x->unacked[u].json == NULL)
            continue;
        buf_str(&body, first ? "{\"status\": " : ", {\"status\": ");
        buf_str(&body, x->unacked[u].json);
        buf_str(&body, "}");
        first = 0;
    }
    buf_str(&body, "]}, \"token\": ");
    json_cstr(&body, x->secret ? x->secret : "");
    buf_str(&body, "}");
    char why[512];
    int sock = agent_connect(x, why, sizeof why);
    if (sock >= 0) {
        buf_t message = {0};
        buf_str(&message, x->preamble);
        buf_t framed = {0};
        record_of(&framed, &body);
        buf_add(&message, framed.data, framed.len);
        struct timeval timeout = {(time_t)CONNECT_TIMEOUT, 0}, none = {0, 0};
        setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        if (send_all(sock, message.data, message.len) < 0) {
            snprintf(why, sizeof why, "[Errno %d] %s", errno, strerror(errno));
            close(sock);
            sock = -1;
        } else {
            setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
        }
        buf_free(&message);
        buf_free(&framed);
    }
    buf_free(&body);
    if (sock < 0) {
        disconnected(x, why);
        return;
    }
    x->sock = sock;
    buf_clear(&x->in);
    x->lost_since = -1;
}

static void disconnected(executor_t *x, const char *why) {
    if (x->exit_code >= 0)
        return;
    double now = monotonic();
    if (!x->checkpoint) {
        log_line("lost the agent (%s); the framework does not checkpoint, so the task is killed", why);
        kill_now(x);
        x->exit_code = 1;
        return;
    }
    if (x->lost_since < 0) {
        x->lost_since = now;
        log_line("lost the agent (%s); reconnecting", why);
    }
    if (now - x->lost_since > x->recovery_timeout) {
        log_line("the agent did not come back within the recovery timeout; killing the task");
        kill_now(x);
        x->exit_code = 1;
        return;
    }
    later(x, T_RECONNECT, x->backoff_max < RECONNECT_INTERVAL ? x->backoff_max : RECONNECT_INTERVAL);
}

/* ---- status updates */

static void new_uuid(char *out) {
    unsigned char bytes[16];
    size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t mix = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_sec;
            for (; got < sizeof bytes; got++, mix = mix * 6364136223846793005ULL + 1442695040888963407ULL)
                bytes[got] = (unsigned char)(mix >> 56);
            break;
        }
        got += (size_t)n;
    }
    bytes[6] = (unsigned char)((bytes[6] & 0x0f) | 0x40); /* a version 4 UUID, as uuid.uuid4() */
    bytes[8] = (unsigned char)((bytes[8] & 0x3f) | 0x80);
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < 16; i += 3) {
        uint32_t v = (uint32_t)bytes[i] << 16;
        if (i + 1 < 16)
            v |= (uint32_t)bytes[i + 1] << 8;
        if (i + 2 < 16)
            v |= bytes[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < 16 ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < 16 ? alphabet[v & 63] : '=';
    }
    out[o] = 0;
}

static void update(executor_t *x, const char *state, const char *message, char *uuid_out) {
    char uuid[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    new_uuid(uuid);
    buf_t status = {0};
    buf_str(&status, "{\"task_id\": ");
    buf_add(&status, x->task_id.data, x->task_id.len);
    buf_str(&status, ", \"state\": ");
    json_cstr(&status, state);
    buf_str(&status, ", \"source\": \"SOURCE_EXECUTOR\", \"executor_id\": {\"value\": ");
    json_cstr(&status, x->executor_id);
    buf_printf(&status, "}, \"timestamp\": %.6f, \"uuid\": \"%s\"",
               (double)now.tv_sec + (double)now.tv_nsec / 1e9, uuid);
    if (message != NULL && *message) {
        buf_str(&status, ", \"message\": ");
        json_cstr(&status, message);
    }
    buf_str(&status, "}");
    int slot = -1;
    for (int u = 0; u < MAX_UNACKED && slot < 0; u++)
        if (x->unacked[u].json == NULL)
            slot = u;
    if (slot < 0) { /* cannot happen with the two updates of a plain task; keep the newest */
        free(x->unacked[0].json);
        memmove(&x->unacked[0], &x->unacked[1], sizeof x->unacked[0] * (MAX_UNACKED - 1));
        slot = MAX_UNACKED - 1;
    }
    memcpy(x->unacked[slot].uuid, uuid, sizeof uuid);
    x->unacked[slot].json = strdup(status.data);
    buf_t body = {0};
    envelope(x, &body, "UPDATE");
    buf_str(&body, ", \"update\": {\"status\": ");
    buf_add(&body, status.data, status.len);
    buf_str(&body, "}}");
    call(x, &body);
    buf_free(&body);
    buf_free(&status);
    if (uuid_out != NULL)
        memcpy(uuid_out, uuid, sizeof uuid);
}

static void finish(executor_t *x, const char *state, const char *message) {
    update(x, state, message, x->final_uuid);
    later(x, T_GIVE_UP, EXIT_TIMEOUT);
}

/* ---- processes */

/* Every process below ``root``, from /proc (parents before children); the count, -1 on failure. */
static long descendants(pid_t root, pid_t **out) {
    *out = NULL;
    DIR *proc = opendir("/proc");
    if (proc == NULL)
        return -1;
    size_t count = 0, cap = 0;
    pid_t (*pairs)[2] = NULL; /* (pid, ppid) */
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        char *stop;
        long pid = strtol(entry->d_name, &stop, 10);
        if (*stop != 0 || pid <= 0)
            continue;
        char path[64], stat[1024];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, stat, sizeof stat - 1);
        close(fd);
        if (n <= 0)
            continue;
        stat[n] = 0;
        /* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
        char *paren = strrchr(stat, ')');
        if (paren == NULL || paren[1] == 0 || paren[2] == 0)
            continue;
        char state;
        long ppid;
        if (sscanf(paren + 2, "%c %ld", &state, &ppid) != 2)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 256;
            void *grown = realloc(pairs, cap * sizeof *pairs);
            if (grown == NULL)
                break;
            pairs = grown;
        }
        pairs[count][0] = (pid_t)pid;
        pairs[count][1] = (pid_t)ppid;
        count++;
    }
    closedir(proc);
    pid_t *found = malloc((count + 1) * sizeof(pid_t));
    if (found == NULL) {
        free(pairs);
        return -1;
    }
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < count; i++)
        if (pairs[i][1] == root)
            found[tail++] = pairs[i][0];
    while (head < tail) {
        pid_t parent = found[head++];
        for (size_t i = 0; i < count; i++)
            if (pairs[i][1] == parent && tail < count)
                found[tail++] = pairs[i][0];
    }
    free(pairs);
    *out = found;
    return (long)tail;
}

static void signal_all(executor_t *x, int signum) {
    if (x->pid > 0)
        killpg(x->pid, signum);
    pid_t *pids;
    long n = descendants(getpid(), &pids);
    for (long i = 0; i < n; i++)
        kill(pids[i], signum);
    free(pids);
}

static void kill_now(executor_t *x) { signal_all(x, SIGKILL); }

static void kill_task(executor_t *x, double grace) {
    if (!x->task.len)
        return;
    if (x->pid <= 0) {
        if (!x->final_uuid[0])
            finish(x, "TASK_KILLED", "Killed before the command started");
        return;
    }
    if (x->killing)
        return;
    x->killing = 1;
    if (isnan(grace) && !isnan(x->task_grace))
        grace = x->task_grace;
    grace = isnan(grace) ? DEFAULT_GRACE : (grace < x->shutdown_grace ? grace : x->shutdown_grace);
    signal_all(x, SIGTERM);
    later(x, T_SIGKILL, grace);
}

/* Whether any child is still alive, once the ended ones are reaped. */
static int has_children(void) {
    for (;;) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid < 0)
            return errno == EINTR ? 1 : 0;
        if (pid == 0)
            return 1;
    }
}

static void kill_leftovers(void) {
    for (int round = 0; round < 100; round++) {
        if (!has_children())
            return;
        pid_t *left;
        long n = descendants(getpid(), &left);
        if (n <= 0) {
            free(left);
            return;
        }
        for (long i = 0; i < n; i++)
            kill(left[i], SIGKILL);
        for (long i = 0; i < n; i++)
            while (waitpid(left[i], NULL, 0) < 0 && errno == EINTR)
                ;
        free(left);
    }
}

static void on_exit_of_task(executor_t *x) {
    close(x->pidfd);
    x->pidfd = -1;
    int status = 0;
    while (waitpid(x->pid, &status, 0) < 0 && errno == EINTR)
        ;
    killpg(x->pid, SIGKILL); /* the command's children go with it */
    x->pid = -1;
    kill_leftovers();
    char message[128], spare[16];
    int code = -1;
    if (WIFEXITED(status)) {
        code = WEXITSTATUS(status);
        snprintf(message, sizeof message, "Command exited with status %d", code);
    } else {
        snprintf(message, sizeof message, "Command terminated with signal %s",
                 signal_name(WTERMSIG(status), spare, sizeof spare));
    }
    finish(x, x->killing ? "TASK_KILLED" : code == 0 ? "TASK_FINISHED" : "TASK_FAILED", message);
}

static int executable(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && access(path, X_OK) == 0 && !S_ISDIR(st.st_mode);
}

/* shutil.which(name, path=path): ``out`` holds what was found; 0 if found. */
static int which(const char *name, const char *path, buf_t *out) {
    buf_clear(out);
    if (strchr(name, '/') != NULL) {
        if (!executable(name))
            return -1;
        buf_str(out, name);
        return 0;
    }
    if (path == NULL || *path == 0)
        return -1;
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        buf_clear(out);
        buf_add(out, p, len);
        if (len > 0 && p[len - 1] != '/')
            buf_add(out, "/", 1);
        buf_str(out, name);
        if (!out->failed && executable(out->data))
            return 0;
        if (colon == NULL)
            return -1;
        p = colon + 1;
    }
}

/* Takes the decoded string at ``node`` (a fresh copy), or NULL with ``*bad`` set when it holds a NUL. */
static char *take_string(executor_t *x, int32_t node, const char *fallback, int *bad) {
    const char *text = fallback;
    size_t len = strlen(fallback);
    if (node >= 0 && jstring(&x->doc, node, &x->scratch) == 0) {
        text = x->scratch.data ? x->scratch.data : "";
        len = x->scratch.len;
    }
    if (memchr(text, 0, len) != NULL) {
        *bad = 1;
        return NULL;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        *bad = 1;
        return NULL;
    }
    memcpy(copy, text, len);
    copy[len] = 0;
    return copy;
}

static void launch(executor_t *x, int32_t task) {
    jdoc *d = &x->doc;
    int32_t id = jget(d, task, "task_id");
    if (x->task.len) {
        buf_t other = {0};
        int32_t value = jget(d, id, "value");
        int same = value >= 0 && jstring(d, value, &other) == 0 && x->task_id_value.len == other.len &&
                   memcmp(other.data, x->task_id_value.data, other.len) == 0;
        buf_free(&other);
        if (!same)
            log_line("the command executor runs a single task; ignoring another launch");
        return;
    }
    const jnode *t = &d->nodes[task];
    buf_add(&x->task, d->s + t->start, t->end - t->start);
    if (id >= 0)
        buf_add(&x->task_id, d->s + d->nodes[id].start, d->nodes[id].end - d->nodes[id].start);
    else
        buf_str(&x->task_id, "null");
    jstring(d, jget(d, id, "value"), &x->task_id_value);
    static const char *const grace_path[] = {"kill_policy", "grace_period", "nanoseconds", NULL};
    double nanos = jnumber(d, jpath(d, task, grace_path));
    x->task_grace = isnan(nanos) ? NAN : trunc(nanos) / 1e9;
    if (jget(d, task, "health_check") >= 0) {
        finish(x, "TASK_FAILED", "Cannot run the task's health check: the native command executor has none");
        return;
    }
    int32_t command = jget(d, task, "command");
    if (command >= 0 && (d->nodes[command].type != J_OBJECT || !jtruthy(d, command)))
        command = -1;
    int32_t shell_node = jget(d, command, "shell");
    int shell = shell_node < 0 ? 1 : jtruthy(d, shell_node);
    int bad = 0;
    size_t argc = 0, envc = 0;
    char **argv = NULL, **envp = NULL;
    for (char *const *e = x->env; *e != NULL; e++)
        envc++;
    int32_t variables = jget(d, jget(d, command, "environment"), "variables");
    size_t nvars = 0;
    if (variables >= 0 && d->nodes[variables].type == J_ARRAY)
        for (int32_t v = d->nodes[variables].first; v >= 0; v = d->nodes[v].next)
            nvars++;
    envp = calloc(envc + nvars + 1, sizeof(char *));
    size_t nenv = 0;
    char **owned = calloc(nvars + 1, sizeof(char *));
    size_t nowned = 0;
    if (envp == NULL || owned == NULL) {
        bad = 1;
        goto failed;
    }
    /* The executor's environment without its secret: the task has no business speaking for its executor. */
    for (char *const *e = x->env; *e != NULL; e++)
        if (!(strncmp(*e, SECRET_VARIABLE "=", sizeof SECRET_VARIABLE) == 0))
            envp[nenv++] = *e;
    if (nvars) {
        for (int32_t v = d->nodes[variables].first; v >= 0; v = d->nodes[v].next) {
            char *name = take_string(x, jget(d, v, "name"), "", &bad);
            char *value = take_string(x, jget(d, v, "value"), "", &bad);
            if (bad || strchr(name, '=') != NULL || *name == 0) {
                free(name);
                free(value);
                bad = 1;
                goto failed;
            }
            size_t nlen = strlen(name);
            char *entry = malloc(nlen + strlen(value) + 2);
            if (entry == NULL) {
                free(name);
                free(value);
                bad = 1;
                goto failed;
            }
            sprintf(entry, "%s=%s", name, value);
            free(name);
            free(value);
            owned[nowned++] = entry;
            size_t k;
            for (k = 0; k < nenv; k++)
                if (strncmp(envp[k], entry, nlen + 1) == 0)
                    break;
            envp[k] = entry;
            if (k == nenv)
                nenv++;
        }
    }
    envp[nenv] = NULL;
    if (shell) {
        argv = calloc(4, sizeof(char *));
        if (argv == NULL)
            goto failed;
        argv[0] = strdup("/bin/sh");
        argv[1] = strdup("-c");
        argv[2] = take_string(x, jget(d, command, "value"), "", &bad);
        argc = 3;
    } else {
        int32_t arguments = jget(d, command, "arguments");
        if (arguments >= 0 && jtruthy(d, arguments) && d->nodes[arguments].type == J_ARRAY) {
            for (int32_t a = d->nodes[arguments].first; a >= 0; a = d->nodes[a].next)
                argc++;
            argv = calloc(argc + 1, sizeof(char *));
            if (argv == NULL)
                goto failed;
            size_t k = 0;
            for (int32_t a = d->nodes[arguments].first; a >= 0; a = d->nodes[a].next)
                argv[k++] = take_string(x, a, "", &bad);
        } else {
            argv = calloc(2, sizeof(char *));
            if (argv == NULL)
                goto failed;
            argv[0] = take_string(x, jget(d, command, "value"), "", &bad);
            argc = 1;
        }
    }
    for (size_t k = 0; k < argc; k++)
        if (argv[k] == NULL)
            bad = 1;
    if (bad)
        goto failed;
    {
        /* Found on the task's own PATH, as execvp would in its environment. */
        buf_t program = {0};
        if (shell || which(argv[0], env_get(envp, "PATH") ? env_get(envp, "PATH") : "/bin:/usr/bin", &program)) {
            buf_clear(&program);
            buf_str(&program, argv[0]);
        }
        posix_spawnattr_t attributes;
        posix_spawnattr_init(&attributes);
        sigset_t defaults;
        sigemptyset(&defaults);
        /* Ignored here: the command gets them back at their defaults, as from a shell. */
        sigaddset(&defaults, SIGPIPE);
        sigaddset(&defaults, SIGXFSZ);
        posix_spawnattr_setsigdefault(&attributes, &defaults);
        posix_spawnattr_setpgroup(&attributes, 0);
        posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
        pid_t pid;
        int rc = posix_spawn(&pid, program.data ? program.data : "", NULL, &attributes, argv, envp);
        posix_spawnattr_destroy(&attributes);
        if (rc != 0) {
            char message[4096];
            snprintf(message, sizeof message, "Failed to launch the command: %s: %s", strerror(rc),
                     program.data ? program.data : "");
            buf_free(&program);
            finish(x, "TASK_FAILED", message);
        } else {
            buf_free(&program);
            x->pid = pid;
            x->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
            log_line("forked command at %d", (int)pid);
            update(x, "TASK_RUNNING", NULL, NULL);
        }
    }
    goto done;
failed:
    finish(x, "TASK_FAILED", bad ? "Failed to launch the command: embedded null byte or illegal environment "
                                   "variable name"
                                 : "Failed to launch the command: Cannot allocate memory");
done:
    if (argv != NULL)
        for (size_t k = 0; k < argc; k++)
            free(argv[k]);
    free(argv);
    if (owned != NULL)
        for (size_t k = 0; k < nowned; k++)
            free(owned[k]);
    free(owned);
    free(envp);
}

/* ---- events */

static void handle(executor_t *x) {
    jdoc *d = &x->doc;
    int32_t type = jget(d, 0, "type");
    if (jstring(d, type, &x->scratch) != 0)
        return;
    const char *kind = x->scratch.data;
    if (strcmp(kind, "LAUNCH") == 0) {
        static const char *const path[] = {"launch", "task", NULL};
        int32_t task = jpath(d, 0, path);
        if (task < 0 || d->nodes[task].type != J_OBJECT) {
            log_line("malformed LAUNCH event; killing the task");
            kill_now(x);
            x->exit_code = 1;
            return;
        }
        launch(x, task);
    } else if (strcmp(kind, "KILL") == 0) {
        static const char *const path[] = {"kill", "kill_policy", "grace_period", "nanoseconds", NULL};
        double nanos = jnumber(d, jpath(d, 0, path));
        kill_task(x, isnan(nanos) ? NAN : trunc(nanos) / 1e9);
    } else if (strcmp(kind, "ACKNOWLEDGED") == 0) {
        static const char *const path[] = {"acknowledged", "uuid", NULL};
        if (jstring(d, jpath(d, 0, path), &x->scratch) != 0)
            return;
        const char *uuid = x->scratch.data;
        for (int u = 0; u < MAX_UNACKED; u++) {
            if (x->unacked[u].json != NULL && strcmp(x->unacked[u].uuid, uuid) == 0) {
                free(x->unacked[u].json);
                x->unacked[u].json = NULL;
            }
        }
        x->task_acknowledged = 1;
        if (x->final_uuid[0] && strcmp(uuid, x->final_uuid) == 0)
            x->exit_code = 0;
    } else if (strcmp(kind, "SHUTDOWN") == 0) {
        if (x->pid > 0) {
            double grace = x->shutdown_grace - 1.0;
            kill_task(x, grace > 0 ? grace : 0.0);
        } else if (!x->final_uuid[0]) {
            x->exit_code = 0;
        }
    } else if (strcmp(kind, "ERROR") == 0) {
        static const char *const path[] = {"error", "message", NULL};
        if (jstring(d, jpath(d, 0, path), &x->scratch) != 0)
            buf_clear(&x->scratch);
        log_line("error from the agent: %s", x->scratch.data ? x->scratch.data : "");
        kill_now(x);
        x->exit_code = 1;
    }
}

static void on_stream(executor_t *x) {
    int closed = 0;
    if (buf_reserve(&x->in, 65536)) {
        closed = 1;
    } else {
        ssize_t n;
        do
            n = recv(x->sock, x->in.data + x->in.len, 65536, 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
            closed = 1;
        } else {
            x->in.len += (size_t)n;
            x->in.data[x->in.len] = 0;
            long count = check_records(&x->in, &x->doc);
            if (count < 0) {
                closed = 1;
            } else {
                size_t offset = 0, start, length;
                for (long r = 0; r < count; r++) {
                    next_record(&x->in, offset, &start, &length);
                    offset = start + length;
                    if (json_parse(&x->doc, x->in.data + start, length) == 0)
                        handle(x);
                }
                buf_consume(&x->in, offset);
            }
        }
    }
    if (closed && x->sock >= 0) {
        close(x->sock);
        x->sock = -1;
        disconnected(x, "the agent closed the connection");
    }
}

static void run_timers(executor_t *x) {
    double now = monotonic();
    while (x->exit_code < 0) {
        int due = -1;
        for (int t = 0; t < TIMERS; t++) {
            if (x->timers[t] < 0 || x->timers[t] > now)
                continue;
            if (due < 0 || x->timers[t] < x->timers[due] ||
                (x->timers[t] == x->timers[due] && x->timer_seq[t] < x->timer_seq[due]))
                due = t;
        }
        if (due < 0)
            return;
        x->timers[due] = -1;
        if (due == T_RECONNECT)
            subscribe(x);
        else if (due == T_SIGKILL)
            signal_all(x, SIGKILL);
        else if (!x->checkpoint || x->lost_since < 0)
            x->exit_code = 0; /* the agent did not take the final update in time */
    }
}

static int truthy_setting(const char *value) {
    if (value == NULL)
        return 0;
    while (*value == ' ' || *value == '\t' || *value == '\n')
        value++;
    size_t len = strlen(value);
    while (len && (value[len - 1] == ' ' || value[len - 1] == '\t' || value[len - 1] == '\n'))
        len--;
    static const char *const yes[] = {"true", "1", "yes", "on"};
    for (size_t k = 0; k < 4; k++)
        if (strlen(yes[k]) == len && strncasecmp(value, yes[k], len) == 0)
            return 1;
    return 0;
}

/* command.tls_wanted */
static int tls_wanted(char *const *env) {
    const char *modern = env_get(env, "LIBPROCESS_SSL_ENABLED");
    const char *old = env_get(env, "SSL_ENABLED");
    if (old != NULL && *old && !(modern != NULL && *modern))
        return truthy_setting(old);
    return truthy_setting(modern);
}

/* command.run_executor + CommandExecutor.run: the exit code. */
int run_executor(char *const *env, const char *preamble) {
    static const char *const required[] = {"MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID"};
    char missing[256] = "";
    for (size_t k = 0; k < 3; k++) {
        const char *value = env_get(env, required[k]);
        if (value == NULL || *value == 0) {
            if (*missing)
                strcat(missing, ", ");
            strcat(missing, required[k]);
        }
    }
    if (*missing) {
        log_line("not started by an agent: %s not set", missing);
        return 2;
    }
    if (tls_wanted(env)) {
        log_line("cannot set up TLS to the agent: the native command executor does not speak it");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    executor_t x;
    memset(&x, 0, sizeof x);
    x.env = env;
    x.preamble = preamble;
    const char *endpoint = env_get(env, "MESOS_AGENT_ENDPOINT");
    const char *colon = strrchr(endpoint, ':');
    size_t hlen = colon ? (size_t)(colon - endpoint) : 0;
    if (hlen >= sizeof x.host)
        hlen = sizeof x.host - 1;
    memcpy(x.host, endpoint, hlen);
    x.host[hlen] = 0;
    char *stop;
    long port = colon ? strtol(colon + 1, &stop, 10) : -1;
    if (colon == NULL || *stop != 0 || port < 0 || port > 65535) {
        log_line("not started by an agent: MESOS_AGENT_ENDPOINT is not host:port");
        return 2;
    }
    x.port = (int)port;
    x.framework_id = env_get(env, "MESOS_FRAMEWORK_ID");
    x.executor_id = env_get(env, "MESOS_EXECUTOR_ID");
    x.secret = env_get(env, SECRET_VARIABLE);
    const char *checkpoint = env_get(env, "MESOS_CHECKPOINT");
    x.checkpoint = checkpoint != NULL && strcmp(checkpoint, "1") == 0;
    x.recovery_timeout = duration(env_get(env, "MESOS_RECOVERY_TIMEOUT"), 900.0);
    x.shutdown_grace = duration(env_get(env, "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"), 5.0);
    x.backoff_max = duration(env_get(env, "MESOS_SUBSCRIPTION_BACKOFF_MAX"), 2.0);
    x.sock = x.pidfd = -1;
    x.pid = -1;
    x.task_grace = NAN;
    x.exit_code = -1;
    x.lost_since = -1;
    for (int t = 0; t < TIMERS; t++)
        x.timers[t] = -1;
    /* A child subreaper: whatever the command starts stays among this process's descendants. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    subscribe(&x);
    while (x.exit_code < 0) {
        struct pollfd fds[2];
        int nfds = 0, sock_at = -1, pid_at = -1;
        if (x.sock >= 0) {
            sock_at = nfds;
            fds[nfds++] = (struct pollfd){x.sock, POLLIN, 0};
        }
        if (x.pidfd >= 0) {
            pid_at = nfds;
            fds[nfds++] = (struct pollfd){x.pidfd, POLLIN, 0};
        }
        int timeout = -1;
        double now = monotonic();
        for (int t = 0; t < TIMERS; t++) {
            if (x.timers[t] < 0)
                continue;
            double left = x.timers[t] - now;
            int ms = left <= 0 ? 0 : (int)ceil(left * 1000.0);
            if (timeout < 0 || ms < timeout)
                timeout = ms;
        }
        int ready = poll(fds, (nfds_t)nfds, timeout);
        if (ready < 0 && errno != EINTR) {
            log_line("poll failed: %s", strerror(errno));
            kill_now(&x);
            return 1;
        }
        if (ready > 0) {
            if (sock_at >= 0 && fds[sock_at].revents)
                on_stream(&x);
            if (pid_at >= 0 && fds[pid_at].revents && x.pidfd >= 0)
                on_exit_of_task(&x);
        }
        run_timers(&x);
    }
    return x.exit_code;
}
