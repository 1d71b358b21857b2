/*
 * io.c - the engine's only door to file I/O.
 *
 * Every write, sync, truncate, rename and unlink of the engine passes through
 * here, so that tests can fail the Nth call of a kind (EIO, ENOSPC, a failed
 * fsync) and check that nothing unsynced is ever acknowledged.  The wrappers
 * return 0 / a count, or -errno; they retry EINTR and short writes.
 */
#include "internal.h"

#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Fault injection                                                          */
/* ------------------------------------------------------------------------ */

struct io_fault {
	unsigned long countdown; /* calls left before the fault fires; 0: off */
	int err;                 /* errno to return */
	bool sticky;             /* keep failing after the first fault */
	bool firing;             /* sticky fault has fired */
};

static struct io_fault faults[IO_OP_COUNT_];
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static int faults_armed; /* fast path: no lock when nothing is armed */

void io_fault_set(enum io_op op, unsigned long nth, int err, bool sticky)
{
	pthread_mutex_lock(&fault_mu);
	faults[op].countdown = nth;
	faults[op].err = err;
	faults[op].sticky = sticky;
	faults[op].firing = false;
	__atomic_store_n(&faults_armed, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&fault_mu);
}

void io_fault_clear(void)
{
	pthread_mutex_lock(&fault_mu);
	memset(faults, 0, sizeof faults);
	__atomic_store_n(&faults_armed, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&fault_mu);
}

/* Returns the -errno to fail with, or 0 to go ahead. */
static int fault_check(enum io_op op)
{
	int rc = 0;

	if (MQ_LIKELY(!__atomic_load_n(&faults_armed, __ATOMIC_ACQUIRE)))
		return 0;
	pthread_mutex_lock(&fault_mu);
	struct io_fault *f = &faults[op];
	if (f->firing) {
		rc = -f->err;
	} else if (f->countdown > 0 && --f->countdown == 0) {
		rc = -f->err;
		f->firing = f->sticky;
	}
	pthread_mutex_unlock(&fault_mu);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Crash points                                                             */
/* ------------------------------------------------------------------------ */

int io_crash_armed = -1; /* -1: environment not read yet */
static char crash_name[128];
static unsigned long crash_left;
static pthread_mutex_t crash_mu = PTHREAD_MUTEX_INITIALIZER;

void io_crash_arm(const char *name, unsigned long nth)
{
	pthread_mutex_lock(&crash_mu);
	snprintf(crash_name, sizeof crash_name, "%s", name ? name : "");
	crash_left = nth ? nth : 1;
	__atomic_store_n(&io_crash_armed, name && *name ? 1 : 0,
			 __ATOMIC_RELEASE);
	pthread_mutex_unlock(&crash_mu);
}

static void crash_from_env(void)
{
	const char *e = getenv("MQLOG_CRASH_POINT");
	char name[128];
	unsigned long nth = 1;

	if (!e || !*e) {
		io_crash_arm(NULL, 0);
		return;
	}
	snprintf(name, sizeof name, "%s", e);
	char *colon = strchr(name, ':');
	if (colon) {
		*colon = 0;
		nth = strtoul(colon + 1, NULL, 10);
	}
	io_crash_arm(name, nth);
}

void io_crash_hit(const char *name)
{
	bool die = false;

	if (__atomic_load_n(&io_crash_armed, __ATOMIC_ACQUIRE) < 0) {
		crash_from_env();
		if (!__atomic_load_n(&io_crash_armed, __ATOMIC_ACQUIRE))
			return;
	}
	pthread_mutex_lock(&crash_mu);
	if (!strcmp(name, crash_name) && crash_left > 0 && --crash_left == 0)
		die = true;
	pthread_mutex_unlock(&crash_mu);
	if (die)
		kill(getpid(), SIGKILL);
}

/* ------------------------------------------------------------------------ */
/* Wrappers                                                                 */
/* ------------------------------------------------------------------------ */

int io_open(const char *path, int flags, mode_t mode)
{
	int rc = fault_check(IO_OP_OPEN);
	int fd;

	if (rc)
		return rc;
	do {
		fd = open(path, flags | O_CLOEXEC, mode);
	} while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

int io_close(int fd)
{
	if (fd < 0)
		return 0;
	/* Linux closes the descriptor even when close() reports EINTR. */
	return close(fd) == 0 || errno == EINTR ? 0 : -errno;
}

int io_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	int rc = fault_check(IO_OP_WRITE);

	if (rc)
		return rc;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t io_pread(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	do {
		n = pread(fd, buf, len, (off_t)off);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

int io_fdatasync(int fd)
{
	int rc = fault_check(IO_OP_SYNC);

	if (rc)
		return rc;
	/* Never retried on failure: after a failed fsync the kernel may have
	 * dropped the dirty pages, and a second fsync could succeed falsely.
	 * The caller fail-stops the partition instead. */
	return fdatasync(fd) == 0 ? 0 : -errno;
}

int io_fsync_dir(const char *dir)
{
	int rc = fault_check(IO_OP_DIRSYNC);
	int fd;

	if (rc)
		return rc;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

int io_ftruncate(int fd, uint64_t len)
{
	int rc = fault_check(IO_OP_TRUNCATE);

	if (rc)
		return rc;
	while (ftruncate(fd, (off_t)len) != 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int io_rename(const char *from, const char *to)
{
	int rc = fault_check(IO_OP_RENAME);

	if (rc)
		return rc;
	return rename(from, to) == 0 ? 0 : -errno;
}

int io_unlink(const char *path)
{
	int rc = fault_check(IO_OP_UNLINK);

	if (rc)
		return rc;
	return unlink(path) == 0 ? 0 : -errno;
}

int io_mkdir(const char *path, mode_t mode)
{
	int rc = fault_check(IO_OP_MKDIR);

	if (rc)
		return rc;
	return mkdir(path, mode) == 0 ? 0 : -errno;
}

int io_preallocate(int fd, uint64_t off, uint64_t len)
{
	int rc = fault_check(IO_OP_WRITE);

	if (rc)
		return rc;
	/* KEEP_SIZE: the file still ends at the last written byte, so the
	 * format and recovery do not change; the blocks are just ready. */
	while (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) != 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int io_file_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

/*
 * io_rmtree - remove a directory tree without following symlinks.  Uses
 * openat/unlinkat so that a deep tree needs no path building.
 */
static int rmtree_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (fd < 0) {
		if (errno == ENOTDIR || errno == ELOOP)
			return unlinkat(dirfd, name, 0) == 0 ? 0 : -errno;
		return errno == ENOENT ? 0 : -errno;
	}
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_DIR) {
			int r = rmtree_at(fd, de->d_name);
			if (r && !rc)
				rc = r;
		} else if (unlinkat(fd, de->d_name, 0) != 0 && errno != ENOENT &&
			   !rc) {
			rc = -errno;
		}
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT && !rc)
		rc = -errno;
	return rc;
}

int io_rmtree(const char *path)
{
	int rc = fault_check(IO_OP_UNLINK);

	if (rc)
		return rc;
	return rmtree_at(AT_FDCWD, path);
}
