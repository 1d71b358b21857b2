/*
 * mqlog.c - opening and closing a data directory, error codes and messages,
 * the background flusher.
 *
 * Opening protocol.  DIR/lock carries the open epoch (8 bytes) and an OFD
 * lock.  A process that gets the lock exclusively is alone: it starts a new
 * epoch (a random number), reconciles topics left half-created or
 * half-deleted by a crash, then downgrades to a shared lock.  Otherwise it
 * waits for a shared lock and joins the current epoch.  A partition whose
 * state file carries an older epoch is recovered by the first process that
 * uses it (partition.c), so opening is O(1) in the size of the directory.
 * OFD locks are released by the kernel when their owner dies, and are not
 * dropped when another descriptor of the file is closed.
 */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ======================================================================== */
/* Errors                                                                   */
/* ======================================================================== */

static _Thread_local char errmsg_buf[1024];

const char *mqlog_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "success";
#define MQLOG_ERROR_STR_(name, code, msg) \
	case MQLOG_##name:                \
		return msg;
		MQLOG_ERROR_MAP(MQLOG_ERROR_STR_)
#undef MQLOG_ERROR_STR_
	default:
		break;
	}
	if (rc < 0 && rc > -4096)
		return strerror(-rc);
	return "unknown error";
}

const char *mqlog_errname(int rc)
{
	switch (rc) {
	case 0:
		return "MQLOG_OK";
#define MQLOG_ERROR_NAME_(name, code, msg) \
	case MQLOG_##name:                 \
		return "MQLOG_" #name;
		MQLOG_ERROR_MAP(MQLOG_ERROR_NAME_)
#undef MQLOG_ERROR_NAME_
	default:
		break;
	}
	if (rc < 0 && rc > -4096) {
		const char *n = strerrorname_np(-rc);
		if (n)
			return n;
	}
	return "UNKNOWN";
}

const char *mqlog_errmsg(const struct mqlog *db)
{
	MQ_UNUSED(db);
	return errmsg_buf[0] ? errmsg_buf : "no error";
}

int mq_err(int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(errmsg_buf, sizeof errmsg_buf, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof errmsg_buf - 3)
		snprintf(errmsg_buf + n, sizeof errmsg_buf - (size_t)n, ": %s",
			 mqlog_strerror(rc));
	return rc;
}

int mq_err_pass(int rc, const char *msg)
{
	snprintf(errmsg_buf, sizeof errmsg_buf, "%s", msg);
	return rc;
}

int mq_err_wrap(int rc, const char *fmt, ...)
{
	char prefix[512];
	char old[sizeof errmsg_buf];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, errmsg_buf, sizeof old);
	if (old[0])
		snprintf(errmsg_buf, sizeof errmsg_buf, "%s: %s", prefix, old);
	else
		snprintf(errmsg_buf, sizeof errmsg_buf, "%s: %s", prefix,
			 mqlog_strerror(rc));
	return rc;
}

int64_t mq_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t mq_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ======================================================================== */
/* Options                                                                  */
/* ======================================================================== */

void mqlog_options_init(mqlog_options *opts)
{
	memset(opts, 0, sizeof *opts);
	opts->flags = MQLOG_OPEN_CREATE;
	opts->map_size = 64u << 20;
	opts->max_open_segments = 256;
	opts->maintenance_ms = 0;
	opts->watermark = 0.8;
	opts->on_watermark = NULL;
	opts->watermark_arg = NULL;
	opts->wait_spin_us = 50;
}

/* ======================================================================== */
/* Process registry: one environment per directory per process              */
/* ======================================================================== */

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mqlog *registry;

/* ======================================================================== */
/* Open lock and epoch                                                      */
/* ======================================================================== */

static int ofd_lock(int fd, short type, bool wait)
{
	struct flock fl;

	memset(&fl, 0, sizeof fl);
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 0;
	for (;;) {
		if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static uint64_t new_epoch(void)
{
	uint64_t e = 0;

	if (getrandom(&e, sizeof e, 0) != (ssize_t)sizeof e)
		e = mq_mono_ns() ^ ((uint64_t)getpid() << 32);
	/* 0 is reserved for "private, no epoch". */
	return e ? e : 1;
}

/*
 * A read-only process never holds the open lock: holding it would keep the
 * next writer from starting a new epoch (and so from recovering after a
 * reboot).  It joins the current epoch only while a writer holds the lock,
 * and otherwise reads every partition through a private view of the files.
 */
static int epoch_peek(struct mqlog *db, const char *path)
{
	struct flock fl;
	uint8_t buf[8];
	int fd = io_open(path, O_RDONLY, 0);

	db->epoch = 0;
	db->lock_fd = -1;
	if (fd < 0)
		return 0; /* never opened for writing: private views */
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK &&
	    io_pread(fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf)
		db->epoch = mq_ld64(buf);
	close(fd);
	return 0;
}

/*
 * Join or start an epoch.  Sets db->lock_fd and db->epoch, and *first when
 * this process started the epoch (and still holds the exclusive lock).
 */
static int epoch_join(struct mqlog *db, bool *first)
{
	char path[MQ_PATH_MAX];
	uint8_t buf[8];
	int fd, rc;

	*first = false;
	snprintf(path, sizeof path, "%s/lock", db->path);
	if (db->rdonly)
		return epoch_peek(db, path);
	fd = io_open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return mq_err(fd, "%s", path);
	if (!db->rdonly && ofd_lock(fd, F_WRLCK, false) == 0) {
		db->epoch = new_epoch();
		mq_st64(buf, db->epoch);
		rc = io_pwrite_all(fd, buf, sizeof buf, 0);
		if (rc) {
			close(fd);
			return mq_err(rc, "%s: write epoch", path);
		}
		*first = true;
		db->lock_fd = fd;
		return 0;
	}
	rc = ofd_lock(fd, F_RDLCK, true);
	if (rc) {
		close(fd);
		return mq_err(rc, "%s: lock", path);
	}
	if (io_pread(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf) {
		/* Never written: nobody is in an epoch we could join. */
		db->epoch = 0;
	} else {
		db->epoch = mq_ld64(buf);
	}
	db->lock_fd = fd;
	return 0;
}

/* ======================================================================== */
/* Flusher                                                                  */
/* ======================================================================== */

#define FLUSHER_TICK_MS 50
#define INDEX_FLUSH_MS	1000

/*
 * The flusher syncs partitions written under the interval policy once their
 * interval has passed, and writes buffered index entries at least every
 * second so that other processes' lookups stay close to the log end.
 */
static void *flusher_main(void *arg)
{
	struct mqlog *db = arg;
	int64_t last_index = mq_now_ms();
	int64_t last_maint = last_index;

	pthread_mutex_lock(&db->mu);
	while (!db->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += FLUSHER_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&db->cond, &db->mu, &ts);
		if (db->stopping)
			break;
		int64_t now = mq_now_ms();
		if (db->maintenance_ms &&
		    now - last_maint >= (int64_t)db->maintenance_ms) {
			last_maint = now;
			/* mqlog_maintain opens topics, which takes db->mu.
			 * Errors reach the next appender or the caller of
			 * mqlog_maintain; this thread has no one to tell. */
			pthread_mutex_unlock(&db->mu);
			(void)mqlog_maintain(db, NULL);
			pthread_mutex_lock(&db->mu);
			if (db->stopping)
				break;
		}
		bool do_index = now - last_index >= INDEX_FLUSH_MS;
		if (do_index)
			last_index = now;
		for (struct mqlog_topic *t = db->topics; t; t = t->next) {
			uint32_t np = t->meta.cfg.partitions;
			for (uint32_t i = 0; i < np; i++) {
				struct partition *p = __atomic_load_n(
					&t->parts[i], __ATOMIC_ACQUIRE);
				if (!p)
					continue;
				pthread_mutex_lock(&p->mu);
				bool wb = p->dirty;
				bool due = p->dirty &&
					   (t->meta.cfg.sync ==
						    MQLOG_SYNC_INTERVAL ||
					    p->interval) &&
					   now - p->last_sync_ms >=
						   (int64_t)t->meta.cfg
							   .sync_interval_ms;
				pthread_mutex_unlock(&p->mu);
				/* db->mu keeps the topic open while we work;
				 * errors fail-stop the partition and are
				 * reported to the next appender. */
				if (due)
					(void)partition_sync(p);
				else if (do_index)
					(void)partition_flush_index(p);
				if (wb && !due)
					partition_writeback(p, now);
				/* Segments the count limit left below the
				 * start (retention.c). */
				(void)retention_reap(p);
			}
		}
	}
	pthread_mutex_unlock(&db->mu);
	return NULL;
}

void mq_db_start_flusher(struct mqlog *db)
{
	/* Lock-free when it runs already: appenders call this. */
	if (__atomic_load_n(&db->flusher_running, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&db->mu);
	if (!__atomic_load_n(&db->flusher_running, __ATOMIC_RELAXED) &&
	    !db->rdonly && !db->stopping) {
		if (pthread_create(&db->flusher, NULL, flusher_main, db) == 0)
			__atomic_store_n(&db->flusher_running, true,
					 __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&db->mu);
}

/* ======================================================================== */
/* Open / close                                                             */
/* ======================================================================== */

/*
 * Create directory @path if it is missing, and make its entry durable
 * either way: a directory whose name never reached the disk takes
 * everything later written and synced inside it along when the power
 * goes, and an existing one may be left by an open whose fsync failed.
 */
static int make_dir(const char *path)
{
	char parent[MQ_PATH_MAX];
	char *slash;
	int rc = io_mkdir(path, 0755);
	bool existed = rc == -EEXIST;

	if (rc && !existed)
		return mq_err(rc, "%s: create", path);
	snprintf(parent, sizeof parent, "%s", path);
	slash = strrchr(parent, '/');
	while (slash && slash > parent && slash[1] == '\0') {
		*slash = '\0'; /* "a/b/": the name is "b" */
		slash = strrchr(parent, '/');
	}
	if (!slash)
		snprintf(parent, sizeof parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	rc = io_fsync_dir(parent);
	/* A parent we may not open (only the open fails with these) holds
	 * an entry that was there before us: nothing to make durable. */
	if (existed && (rc == -EACCES || rc == -EPERM))
		rc = 0;
	return rc ? mq_err(rc, "%s: fsync", parent) : 0;
}

static int ensure_dir(const char *path, bool create)
{
	struct stat st;
	int rc;

	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return mq_err(MQLOG_EINVAL, "%s: not a directory",
				      path);
		return 0;
	}
	if (errno != ENOENT)
		return mq_err(-errno, "%s", path);
	if (!create)
		return mq_err(MQLOG_ENOENT, "%s: no such data directory", path);
	rc = io_mkdir(path, 0755);
	return rc && rc != -EEXIST ? mq_err(rc, "%s: create", path) : 0;
}

static void stop_flusher(struct mqlog *db)
{
	if (__atomic_load_n(&db->flusher_running, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&db->mu);
		db->stopping = true;
		pthread_cond_broadcast(&db->cond);
		pthread_mutex_unlock(&db->mu);
		pthread_join(db->flusher, NULL);
		__atomic_store_n(&db->flusher_running, false, __ATOMIC_RELEASE);
	}
}

static void db_free(struct mqlog *db)
{
	if (!db)
		return;
	stop_flusher(db);
	index_close(db->ix);
	if (db->lock_fd >= 0)
		close(db->lock_fd); /* releases the OFD lock */
	pthread_cond_destroy(&db->cond);
	pthread_mutex_destroy(&db->mu);
	free(db->path);
	free(db);
}

int mqlog_open(const char *path, const mqlog_options *opts, mqlog **out)
{
	mqlog_options defaults;
	struct mqlog *db = NULL;
	char sub[MQ_PATH_MAX];
	struct stat st;
	bool first = false;
	int rc;

	if (!path || !*path || !out)
		return mq_err(MQLOG_EINVAL,
			      "mqlog_open: path and out required");
	/* The reason first: the path itself would fill the message. */
	if (strlen(path) > MQ_PATH_MAX - 512)
		return mq_err(MQLOG_EINVAL,
			      "mqlog_open: path too long (%zu bytes, at most "
			      "%d): %.64s...",
			      strlen(path), MQ_PATH_MAX - 512, path);
	if (!opts) {
		mqlog_options_init(&defaults);
		opts = &defaults;
	}
	bool rdonly = (opts->flags & MQLOG_OPEN_RDONLY) != 0;
	rc = ensure_dir(path, (opts->flags & MQLOG_OPEN_CREATE) && !rdonly);
	if (rc)
		return rc;
	if (stat(path, &st) != 0)
		return mq_err(-errno, "%s", path);

	pthread_mutex_lock(&registry_mu);
	for (db = registry; db; db = db->next) {
		if (db->dev == st.st_dev && db->ino == st.st_ino) {
			db->refs++;
			pthread_mutex_unlock(&registry_mu);
			*out = db;
			return 0;
		}
	}

	db = calloc(1, sizeof *db);
	if (!db) {
		rc = mq_err(MQLOG_ENOMEM, "%s", path);
		goto fail_unlock;
	}
	db->lock_fd = -1;
	db->rdonly = rdonly;
	db->maintenance_ms = opts->maintenance_ms;
	db->spin_ns = (uint64_t)opts->wait_spin_us * 1000u;
	db->watermark = opts->watermark > 0 ? opts->watermark : 0.8;
	db->on_watermark = opts->on_watermark;
	db->watermark_arg = opts->watermark_arg;
	db->dev = st.st_dev;
	db->ino = st.st_ino;
	db->refs = 1;
	pthread_mutex_init(&db->mu, NULL);
	pthread_cond_init(&db->cond, NULL);
	db->path = strdup(path);
	if (!db->path) {
		rc = mq_err(MQLOG_ENOMEM, "%s", path);
		goto fail;
	}
	if (!rdonly) {
		/* The directory's entry and its topics/ entry are durable
		 * before anything is acknowledged inside them. */
		rc = make_dir(path);
		if (rc)
			goto fail;
		snprintf(sub, sizeof sub, "%s/topics", path);
		rc = make_dir(sub);
		if (rc)
			goto fail;
	}
	rc = epoch_join(db, &first);
	if (rc)
		goto fail;
	snprintf(sub, sizeof sub, "%s/meta", path);
	rc = index_open(sub, rdonly, opts->map_size, &db->ix);
	if (rc) {
		mq_err_wrap(rc, "%s", path);
		goto fail;
	}
	if (first) {
		rc = topic_reconcile(db);
		if (rc) {
			mq_err_wrap(rc, "%s: reconcile topics", path);
			goto fail;
		}
		rc = ofd_lock(db->lock_fd, F_RDLCK, false);
		if (rc) {
			rc = mq_err(rc, "%s/lock: downgrade", path);
			goto fail;
		}
	}
	db->next = registry;
	registry = db;
	pthread_mutex_unlock(&registry_mu);
	if (db->maintenance_ms)
		mq_db_start_flusher(db);
	*out = db;
	return 0;

fail:
	db_free(db);
fail_unlock:
	pthread_mutex_unlock(&registry_mu);
	return rc;
}

void mqlog_close(mqlog *db)
{
	struct mqlog **pp;

	if (!db)
		return;
	pthread_mutex_lock(&registry_mu);
	if (--db->refs > 0) {
		pthread_mutex_unlock(&registry_mu);
		return;
	}
	for (pp = &registry; *pp; pp = &(*pp)->next) {
		if (*pp == db) {
			*pp = db->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_mu);
	/* The flusher may hold topic handles of its own (maintenance). */
	stop_flusher(db);
	/* Topics still open are a programming error; close them anyway so
	 * that buffered index entries reach LMDB and nothing leaks. */
	while (db->topics) {
		struct mqlog_topic *t = db->topics;
		t->refs = 1;
		mqlog_topic_close(t);
	}
	db_free(db);
}

int mqlog_sync(mqlog *db)
{
	int rc = 0;

	if (!db)
		return mq_err(MQLOG_EINVAL, "mqlog_sync: db is NULL");
	pthread_mutex_lock(&db->mu);
	for (struct mqlog_topic *t = db->topics; t; t = t->next) {
		for (uint32_t i = 0; i < t->meta.cfg.partitions; i++) {
			struct partition *p =
				__atomic_load_n(&t->parts[i], __ATOMIC_ACQUIRE);
			if (!p)
				continue;
			int r = partition_sync(p);
			if (r && !rc)
				rc = r;
		}
	}
	pthread_mutex_unlock(&db->mu);
	return rc;
}
