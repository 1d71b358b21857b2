/*
 * io.c - the engine's only door to file I/O.
 *
 * Every write, sync, truncate, rename and unlink of the engine passes through
 * here, so that tests can fail the Nth call of a kind (EIO, ENOSPC, a short
 * write, a failed fsync) and check that nothing unsynced is ever
 * acknowledged, and so that they can record every operation and replay it
 * as the states a power cut could leave.  The wrappers return 0 / a count,
 * or -errno; they retry EINTR and short writes.
 */
#include "internal.h"

#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Fault injection                                                          */
/* ------------------------------------------------------------------------ */

struct io_fault {
	unsigned long countdown; /* calls left before the fault fires; 0: off */
	int err;		 /* errno to return */
	bool sticky;		 /* keep failing after the first fault */
	bool firing;		 /* sticky fault has fired */
	bool short_write; /* a faulted write writes half its bytes first */
};

static struct io_fault faults[IO_OP_COUNT_];
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static int faults_armed; /* fast path: no lock when nothing is armed */
static unsigned long faults_fired; /* since the last set or clear */

static void fault_arm(enum io_op op, unsigned long nth, int err, bool sticky,
		      bool short_write)
{
	pthread_mutex_lock(&fault_mu);
	faults[op].countdown = nth;
	faults[op].err = err;
	faults[op].sticky = sticky;
	faults[op].firing = false;
	faults[op].short_write = short_write;
	faults_fired = 0;
	__atomic_store_n(&faults_armed, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&fault_mu);
}

void io_fault_set(enum io_op op, unsigned long nth, int err, bool sticky)
{
	fault_arm(op, nth, err, sticky, false);
}

void io_fault_set_short(enum io_op op, unsigned long nth, int err, bool sticky)
{
	fault_arm(op, nth, err, sticky, true);
}

void io_fault_clear(void)
{
	pthread_mutex_lock(&fault_mu);
	memset(faults, 0, sizeof faults);
	faults_fired = 0;
	__atomic_store_n(&faults_armed, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&fault_mu);
}

unsigned long io_fault_fired(void)
{
	pthread_mutex_lock(&fault_mu);
	unsigned long n = faults_fired;
	pthread_mutex_unlock(&fault_mu);
	return n;
}

/*
 * Returns the -errno to fail with, or 0 to go ahead.  *short_write (may be
 * NULL) says whether the failing call should do half its work first.
 */
static int fault_check_mode(enum io_op op, bool *short_write)
{
	int rc = 0;

	if (short_write)
		*short_write = false;
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
	if (rc)
		faults_fired++;
	if (rc && short_write)
		*short_write = f->short_write;
	pthread_mutex_unlock(&fault_mu);
	return rc;
}

static int fault_check(enum io_op op)
{
	return fault_check_mode(op, NULL);
}

/* ------------------------------------------------------------------------ */
/* Recording (the tests' power-loss model)                                  */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static int rec_on;	       /* fast path: recording is off */
static struct io_rec *rec_log; /* entries */
static size_t rec_n, rec_cap;  /* used / allocated */

static void rec_clear_locked(void)
{
	for (size_t i = 0; i < rec_n; i++) {
		free(rec_log[i].path);
		free(rec_log[i].path2);
		free(rec_log[i].data);
	}
	free(rec_log);
	rec_log = NULL;
	rec_n = rec_cap = 0;
}

void io_record_start(void)
{
	pthread_mutex_lock(&rec_mu);
	rec_clear_locked();
	__atomic_store_n(&rec_on, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&rec_mu);
}

void io_record_stop(void)
{
	__atomic_store_n(&rec_on, 0, __ATOMIC_RELEASE);
}

void io_record_free(void)
{
	pthread_mutex_lock(&rec_mu);
	__atomic_store_n(&rec_on, 0, __ATOMIC_RELEASE);
	rec_clear_locked();
	pthread_mutex_unlock(&rec_mu);
}

size_t io_record_count(void)
{
	pthread_mutex_lock(&rec_mu);
	size_t n = rec_n;
	pthread_mutex_unlock(&rec_mu);
	return n;
}

const struct io_rec *io_record_get(size_t i)
{
	const struct io_rec *r = NULL;

	pthread_mutex_lock(&rec_mu);
	if (i < rec_n)
		r = &rec_log[i];
	pthread_mutex_unlock(&rec_mu);
	return r;
}

static inline bool rec_active(void)
{
	return MQ_UNLIKELY(__atomic_load_n(&rec_on, __ATOMIC_ACQUIRE));
}

/*
 * Append one entry (copies of @path, @path2 and @len bytes of @data).  A
 * test cannot trust a log with holes, so running out of memory here is
 * fatal: the recorder exists only in tests.
 */
static void rec_add(enum io_rec_op op, int rc, int fd, int flags, uint64_t off,
		    uint64_t len, const char *path, const char *path2,
		    const void *data, uint64_t tag)
{
	struct io_rec r = { op, rc, fd, flags, off, len, NULL, NULL, NULL, tag };

	if (path && !(r.path = strdup(path)))
		abort();
	if (path2 && !(r.path2 = strdup(path2)))
		abort();
	if (data && len) {
		if (!(r.data = malloc((size_t)len)))
			abort();
		memcpy(r.data, data, (size_t)len);
	}
	pthread_mutex_lock(&rec_mu);
	if (!__atomic_load_n(&rec_on, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&rec_mu);
		free(r.path);
		free(r.path2);
		free(r.data);
		return;
	}
	if (rec_n == rec_cap) {
		size_t ncap = rec_cap ? rec_cap * 2 : 1024;
		struct io_rec *nl = realloc(rec_log, ncap * sizeof *nl);
		if (!nl)
			abort();
		rec_log = nl;
		rec_cap = ncap;
	}
	rec_log[rec_n++] = r;
	pthread_mutex_unlock(&rec_mu);
}

void io_record_note(uint64_t tag)
{
	if (rec_active())
		rec_add(IO_REC_NOTE, 0, -1, 0, 0, 0, NULL, NULL, NULL, tag);
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

	if (rc) {
		if (rec_active())
			rec_add(IO_REC_OPEN, rc, -1, flags, 0, 0, path, NULL,
				NULL, 0);
		return rc;
	}
	do {
		fd = open(path, flags | O_CLOEXEC, mode);
	} while (fd < 0 && errno == EINTR);
	rc = fd < 0 ? -errno : fd;
	if (rec_active())
		rec_add(IO_REC_OPEN, rc, fd, flags, 0, 0, path, NULL, NULL, 0);
	return rc;
}

int io_close(int fd)
{
	if (fd < 0)
		return 0;
	/* Logged before the number can be reused by another thread. */
	if (rec_active())
		rec_add(IO_REC_CLOSE, 0, fd, 0, 0, 0, NULL, NULL, NULL, 0);
	/* Linux closes the descriptor even when close() reports EINTR. */
	return close(fd) == 0 || errno == EINTR ? 0 : -errno;
}

int io_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	const uint64_t start = off;
	bool short_write;
	int rc = fault_check_mode(IO_OP_WRITE, &short_write);
	int fail = 0;

	if (rc) {
		if (!short_write) {
			if (rec_active())
				rec_add(IO_REC_WRITE, rc, fd, 0, off, 0, NULL,
					NULL, NULL, 0);
			return rc;
		}
		/* Part of the batch reaches the file, then the error. */
		fail = rc;
		len /= 2;
	}
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail = -errno;
			break;
		}
		if (n == 0) {
			fail = -EIO;
			break;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	if (rec_active())
		rec_add(IO_REC_WRITE, fail, fd, 0, start, off - start, NULL,
			NULL, buf, 0);
	return fail;
}

int io_pwritev_all(int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct iovec v[IO_IOV_MAX];
	int cnt = iovcnt, first = 0, rc;

	/* Under fault injection or recording, one write per buffer: each
	 * can fail or be torn on its own, as the parts of a real pwritev can
	 * reach the disk separately. */
	if (MQ_UNLIKELY(__atomic_load_n(&faults_armed, __ATOMIC_ACQUIRE) ||
			rec_active())) {
		for (int i = 0; i < iovcnt; i++) {
			rc = io_pwrite_all(fd, iov[i].iov_base, iov[i].iov_len,
					   off);
			if (rc)
				return rc;
			off += iov[i].iov_len;
		}
		return 0;
	}
	if (cnt > IO_IOV_MAX)
		return -EINVAL;
	memcpy(v, iov, (size_t)cnt * sizeof v[0]);
	while (first < cnt) {
		ssize_t n = pwritev(fd, v + first, cnt - first, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		off += (uint64_t)n;
		/* Skip what was written; resume inside a partial buffer. */
		while (first < cnt && (size_t)n >= v[first].iov_len)
			n -= (ssize_t)v[first++].iov_len;
		if (first < cnt) {
			v[first].iov_base = (uint8_t *)v[first].iov_base + n;
			v[first].iov_len -= (size_t)n;
		}
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

	/* Never retried on failure: after a failed fsync the kernel may have
	 * dropped the dirty pages, and a second fsync could succeed falsely.
	 * The caller fail-stops the partition instead. */
	if (!rc)
		rc = fdatasync(fd) == 0 ? 0 : -errno;
	if (rec_active())
		rec_add(IO_REC_SYNC, rc, fd, 0, 0, 0, NULL, NULL, NULL, 0);
	return rc;
}

int io_fsync_dir(const char *dir)
{
	int rc = fault_check(IO_OP_DIRSYNC);
	int fd;

	if (!rc) {
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
		} else {
			rc = fsync(fd) == 0 ? 0 : -errno;
			close(fd);
		}
	}
	if (rec_active())
		rec_add(IO_REC_DIRSYNC, rc, -1, 0, 0, 0, dir, NULL, NULL, 0);
	return rc;
}

int io_ftruncate(int fd, uint64_t len)
{
	int rc = fault_check(IO_OP_TRUNCATE);

	while (!rc && ftruncate(fd, (off_t)len) != 0) {
		if (errno != EINTR)
			rc = -errno;
	}
	if (rec_active())
		rec_add(IO_REC_TRUNCATE, rc, fd, 0, 0, len, NULL, NULL, NULL,
			0);
	return rc;
}

int io_rename(const char *from, const char *to)
{
	int rc = fault_check(IO_OP_RENAME);

	if (!rc)
		rc = rename(from, to) == 0 ? 0 : -errno;
	if (rec_active())
		rec_add(IO_REC_RENAME, rc, -1, 0, 0, 0, from, to, NULL, 0);
	return rc;
}

int io_unlink(const char *path)
{
	int rc = fault_check(IO_OP_UNLINK);

	if (!rc)
		rc = unlink(path) == 0 ? 0 : -errno;
	if (rec_active())
		rec_add(IO_REC_UNLINK, rc, -1, 0, 0, 0, path, NULL, NULL, 0);
	return rc;
}

int io_mkdir(const char *path, mode_t mode)
{
	int rc = fault_check(IO_OP_MKDIR);

	if (!rc)
		rc = mkdir(path, mode) == 0 ? 0 : -errno;
	if (rec_active())
		rec_add(IO_REC_MKDIR, rc, -1, 0, 0, 0, path, NULL, NULL, 0);
	return rc;
}

void io_writeback(int fd, uint64_t off, uint64_t len)
{
	/* Only starts the writes: it promises nothing about durability, so
	 * neither faults nor the recording backend care about it. */
	if (len)
		(void)sync_file_range(fd, (off_t)off, (off_t)len,
				      SYNC_FILE_RANGE_WRITE);
}

int io_preallocate(int fd, uint64_t off, uint64_t len)
{
	int rc = fault_check(IO_OP_WRITE);

	if (rc)
		return rc;
	/* KEEP_SIZE: the file still ends at the last written byte, so the
	 * format and recovery do not change; the blocks are just ready. */
	while (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) !=
	       0) {
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
	int fd = openat(dirfd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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
		} else if (unlinkat(fd, de->d_name, 0) != 0 &&
			   errno != ENOENT && !rc) {
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

	if (!rc)
		rc = rmtree_at(AT_FDCWD, path);
	if (rec_active())
		rec_add(IO_REC_RMTREE, rc, -1, 0, 0, 0, path, NULL, NULL, 0);
	return rc;
}
