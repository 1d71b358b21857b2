/*
 * util.c - time, errors, directories and child processes for mqlog-bench.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Time                                                                     */
/* ------------------------------------------------------------------------ */

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/*
 * Sleeping is accurate only to ~60 us (timer slack, wake-up), so the last
 * 100 us before the target are spun.  Gaps shorter than that are spun
 * whole: a fixed-rate producer of 100 000 records/s has 10 us between
 * records.
 */
void pace_until(uint64_t target)
{
	for (;;) {
		uint64_t now = now_ns();

		if (now >= target)
			return;
		if (target - now > 200000) {
			uint64_t t = target - 100000;
			struct timespec ts = { (time_t)(t / 1000000000u),
					       (long)(t % 1000000000u) };
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
					NULL);
		} else {
			cpu_relax();
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

static _Thread_local char errbuf[512];

void bench_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof errbuf, fmt, ap);
	va_end(ap);
}

const char *bench_errmsg(void)
{
	return errbuf[0] ? errbuf : "unknown error";
}

void die(const char *fmt, ...)
{
	va_list ap;

	fputs("mqlog-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void die_mqlog(const char *what, int rc)
{
	die("%s: %s (%s)", what, mqlog_errmsg(NULL), mqlog_strerror(rc));
}

void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("mqlog-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nrun 'mqlog-bench --help' for the usage\n", stderr);
	exit(2);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

/* ------------------------------------------------------------------------ */
/* Directories                                                              */
/* ------------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0 && errno != ENOENT)
		fprintf(stderr, "mqlog-bench: remove %s: %s\n", path,
			strerror(errno));
	return 0;
}

void rmtree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return;
	nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

void mkdirs(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof buf)
		die("%s: path too long", path);
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0777) != 0 && errno != EEXIST)
			die("mkdir %s: %s", buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0777) != 0 && errno != EEXIST)
		die("mkdir %s: %s", buf, strerror(errno));
}

static char root[PATH_MAX]; /* the bench's directory */
static bool root_temp;	    /* created here; removed at exit */
static pid_t root_owner;    /* the process that removes it */

static void remove_root(void)
{
	if (root_temp && getpid() == root_owner)
		rmtree(root);
}

/*
 * The janitor: a process forked while the bench is still single-threaded
 * that waits for the bench to end (EOF on a pipe whose only writer is the
 * bench) and then removes the temporary directory.  atexit() covers a
 * normal exit; the janitor covers SIGINT, SIGTERM and kill -9.
 */
static void start_janitor(void)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		return; /* best effort: atexit() still cleans up */
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		char b;
		ssize_t n;

		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		close(p[1]);
		/* Holds none of the bench's output open (a pipe reader would
		 * wait for it), and is not killed with the bench's process
		 * group by ^C. */
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		setsid();
		do
			n = read(p[0], &b, 1);
		while (n > 0 || (n < 0 && errno == EINTR));
		rmtree(root);
		_exit(0);
	}
	close(p[0]);
	/* p[1] stays open (close-on-exec) until the bench ends. */
}

const char *bench_root(const struct bench_opts *o)
{
	const char *base;

	if (root[0])
		return root;
	if (o->dir) {
		if (strlen(o->dir) >= sizeof root - 64)
			usage_error("--dir: path too long");
		mkdirs(o->dir);
		snprintf(root, sizeof root, "%s", o->dir);
		return root;
	}
	base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	if ((size_t)snprintf(root, sizeof root, "%s/mqlog-bench-XXXXXX",
			     base) >= sizeof root - 64)
		usage_error("TMPDIR is too long");
	if (!mkdtemp(root))
		die("mkdtemp %s: %s", root, strerror(errno));
	root_temp = true;
	root_owner = getpid();
	atexit(remove_root);
	start_janitor();
	return root;
}

bool bench_root_is_temp(void)
{
	return root_temp;
}

void bench_subdir(const struct bench_opts *o, const char *name,
		  char out[PATH_MAX])
{
	snprintf(out, PATH_MAX, "%s/%s", bench_root(o), name);
}

void fill_payload(unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)('a' + (i * 7 + seed) % 26);
}

/* ------------------------------------------------------------------------ */
/* Child processes                                                          */
/* ------------------------------------------------------------------------ */

pid_t spawn_worker(char *const argv[], int go_rd, int *res_fd)
{
	int res[2];
	pid_t pid;

	if (pipe2(res, O_CLOEXEC) != 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		/* Only async-signal-safe calls until exec.  Move both ends
		 * above 4 first so that the dup2()s cannot clobber them. */
		int r = fcntl(res[1], F_DUPFD, 10);
		int g = go_rd >= 0 ? fcntl(go_rd, F_DUPFD, 10) : -1;

		if (r < 0 || dup2(r, 3) != 3)
			_exit(127);
		if (g >= 0 && dup2(g, 4) != 4)
			_exit(127);
		/* A worker does not outlive the bench. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* Nothing else of the parent's (LMDB, segments, locks)
		 * leaks into the child. */
		syscall(SYS_close_range, g >= 0 ? 5u : 4u, ~0u, 0u);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(res[1]);
	*res_fd = res[0];
	return pid;
}

size_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

int write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

void settle(void)
{
	sync();
}
