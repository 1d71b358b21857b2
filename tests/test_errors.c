/*
 * test_errors.c - bad input and hostile environments get a clear error and
 * change nothing: read-only directories, a full disk, invalid argument
 * values, paths that are not directories; and every error code has a name
 * and a message.
 *
 * The read-only and full-disk tests mount small tmpfs file systems when
 * running as root (under a base directory that main() unmounts at the end,
 * even when a test failed); otherwise they fall back to permissions or
 * print why they skip.
 */
#include <pthread.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "helpers.h"

static char mnt_base[4096]; /* set by main(); tmpfs mount points live here */

static const char *dbdir(void)
{
	return fx_path("%s/db", fx_dir);
}

/* Mount a tmpfs of @size at mnt_base/@name, path stored in @mnt (4096
 * bytes); returns 0, or -1 (with a printed reason) when that is not
 * possible. */
static int mount_tmpfs(const char *name, const char *size, char *mnt)
{
	char opts[64];
	snprintf(mnt, 4096, "%s/%s", mnt_base, name);
	if (geteuid() != 0) {
		printf("%s: skipped: not root, cannot mount a tmpfs\n", name);
		return -1;
	}
	mkdir(mnt, 0755);
	snprintf(opts, sizeof opts, "size=%s", size);
	if (mount("tmpfs", mnt, "tmpfs", 0, opts) != 0) {
		printf("%s: skipped: mount tmpfs: %s\n", name, strerror(errno));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Snapshots of a tree (paths, sizes, contents)                             */
/* ------------------------------------------------------------------------ */

struct tree {
	size_t n;		  /* files */
	char *path[256];	  /* relative paths */
	unsigned char *data[256]; /* contents */
	size_t len[256];	  /* sizes */
};

static void tree_walk(struct tree *tr, const char *root, const char *rel)
{
	DIR *d = opendir(rel[0] ? fx_path("%s/%s", root, rel) : root);
	struct dirent *e;
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		char sub[2048], full[4096];
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "",
			 e->d_name);
		snprintf(full, sizeof full, "%s/%s", root, sub);
		ck_assert_int_eq(lstat(full, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			tree_walk(tr, root, sub);
		} else {
			ck_assert_uint_lt(tr->n, 256);
			tr->path[tr->n] = strdup(sub);
			tr->data[tr->n] = h_slurp(full, &tr->len[tr->n]);
			tr->n++;
		}
	}
	closedir(d);
}

static void tree_take(struct tree *tr, const char *root)
{
	tr->n = 0;
	tree_walk(tr, root, "");
}

static int tree_find(const struct tree *tr, const char *path)
{
	for (size_t i = 0; i < tr->n; i++)
		if (!strcmp(tr->path[i], path))
			return (int)i;
	return -1;
}

/* Every file of @a exists in @b with the same bytes, and vice versa. */
static void tree_assert_same(const struct tree *a, const struct tree *b)
{
	ck_assert_uint_eq(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		int j = tree_find(b, a->path[i]);
		ck_assert_msg(j >= 0, "%s disappeared", a->path[i]);
		ck_assert_msg(a->len[i] == b->len[j] &&
				      memcmp(a->data[i], b->data[j],
					     a->len[i]) == 0,
			      "%s changed", a->path[i]);
	}
}

static void tree_free(struct tree *tr)
{
	for (size_t i = 0; i < tr->n; i++) {
		free(tr->path[i]);
		free(tr->data[i]);
	}
	tr->n = 0;
}

/* ------------------------------------------------------------------------ */
/* Read-only directory                                                      */
/* ------------------------------------------------------------------------ */

static void populate(const char *dir)
{
	mqlog *db = h_open(dir);
	mqlog_topic_config c = h_cfg(2, 4096, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	char v[64];
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (int i = 0; i < 60; i++) {
		snprintf(v, sizeof v, "ro-%d .............................", i);
		h_append1(t, (uint32_t)(i % 2), v);
	}
	mqlog_topic_close(t);
	mqlog_close(db);
}

static void expect_populated(mqlog_topic *t)
{
	for (uint32_t p = 0; p < 2; p++) {
		struct h_recs rs = { 0 };
		char v[64];
		h_read_all(t, p, &rs);
		ck_assert_uint_eq(rs.n, 30);
		for (size_t i = 0; i < rs.n; i++) {
			snprintf(v, sizeof v,
				 "ro-%zu .............................",
				 i * 2 + p);
			ck_assert_str_eq(rs.r[i].val, v);
		}
		h_recs_free(&rs);
	}
}

/* Try everything that writes against a directory that cannot be written:
 * each attempt fails cleanly (or the open itself does), reads that work
 * return the right records. */
static void poke_unwritable(const char *dir)
{
	mqlog_options ro;
	mqlog *db = NULL;
	int rc;

	for (int flags = 0; flags < 2; flags++) {
		mqlog_options_init(&ro);
		if (flags)
			ro.flags = MQLOG_OPEN_RDONLY;
		db = NULL;
		rc = mqlog_open(dir, &ro, &db);
		if (rc != 0) {
			ck_assert_int_lt(rc, 0);
			ck_assert_ptr_null(db);
			H_ASSERT_MSG(NULL);
			continue;
		}
		rc = mqlog_topic_create(db, "new", NULL);
		ck_assert_int_lt(rc, 0);
		H_ASSERT_MSG(db);
		{
			mqlog_topic *t = NULL;
			rc = mqlog_topic_open(db, "t", &t);
			if (rc == 0) {
				mqlog_msg m = h_msg("nope", 1);
				mqlog_reader *r = NULL;
				rc = mqlog_append(t, 0, &m, 1,
						  MQLOG_SYNC_DEFAULT, NULL);
				ck_assert_int_lt(rc, 0);
				H_ASSERT_MSG(db);
				if (mqlog_reader_open(t, 0, &r) == 0) {
					mqlog_reader_close(r);
					expect_populated(t);
				}
				mqlog_topic_close(t);
			} else {
				ck_assert_int_lt(rc, 0);
				H_ASSERT_MSG(db);
			}
		}
		rc = mqlog_topic_delete(db, "t");
		ck_assert_int_lt(rc, 0);
		mqlog_close(db);
	}
}

/* A data directory on a read-only file system cannot be changed through
 * the library: opening fails clearly or every write fails; after remounting
 * it read-write the contents are unchanged and verify is clean. */
START_TEST(test_readonly_dir)
{
	char mnt[4096], dir[4096];
	struct tree before, after;

	if (geteuid() != 0) {
		/* Permissions are the non-root way to make it unwritable. */
		snprintf(dir, sizeof dir, "%s", dbdir());
		populate(dir);
		tree_take(&before, dir);
		ck_assert_int_eq(system(fx_path("chmod -R a-w '%s'", dir)), 0);
		poke_unwritable(dir);
		ck_assert_int_eq(system(fx_path("chmod -R u+w '%s'", dir)), 0);
		tree_take(&after, dir);
		tree_assert_same(&before, &after);
		tree_free(&before);
		tree_free(&after);
		return;
	}
	if (mount_tmpfs("ro", "8m", mnt) != 0)
		return;
	snprintf(dir, sizeof dir, "%s/db", mnt);
	populate(dir);
	tree_take(&before, dir);
	ck_assert_msg(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT | MS_RDONLY,
			    "size=8m") == 0,
		      "remount read-only: %s", strerror(errno));

	poke_unwritable(dir);

	ck_assert_msg(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=8m") == 0,
		      "remount read-write: %s", strerror(errno));
	tree_take(&after, dir);
	tree_assert_same(&before, &after);
	tree_free(&before);
	tree_free(&after);
	{
		mqlog *db = h_open(dir);
		mqlog_topic *t;
		ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
		t = h_topic(db, "t");
		expect_populated(t);
		mqlog_topic_close(t);
		mqlog_close(db);
	}
	ck_assert_int_eq(umount2(mnt, MNT_DETACH), 0);
}
END_TEST

/* Opened with MQLOG_OPEN_RDONLY, a writable directory can be read and
 * verified, while creates and appends fail with MQLOG_ERDONLY. */
START_TEST(test_open_rdonly_flag)
{
	mqlog_options o;
	mqlog *db = NULL;
	mqlog_topic *t;
	mqlog_msg m = h_msg("x", 1);
	struct tree before, after;
	int rc;

	populate(dbdir());
	tree_take(&before, fx_path("%s/topics", dbdir()));
	mqlog_options_init(&o);
	o.flags = MQLOG_OPEN_RDONLY;
	rc = mqlog_open(dbdir(), &o, &db);
	ck_assert_msg(rc == 0, "open read-only: %s: %s", mqlog_errname(rc),
		      mqlog_errmsg(NULL));
	ck_assert_int_eq(mqlog_topic_create(db, "new", NULL), MQLOG_ERDONLY);
	H_ASSERT_MSG(db);
	t = h_topic(db, "t");
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			 MQLOG_ERDONLY);
	H_ASSERT_MSG(db);
	expect_populated(t);
	mqlog_topic_close(t);
	ck_assert_int_lt(mqlog_topic_delete(db, "t"), 0);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);
	tree_take(&after, fx_path("%s/topics", dbdir()));
	tree_assert_same(&before, &after);
	tree_free(&before);
	tree_free(&after);

	/* A read-only open does not create a missing directory. */
	db = NULL;
	ck_assert_int_eq(mqlog_open(fx_path("%s/missing", fx_dir), &o, &db),
			 MQLOG_ENOENT);
	ck_assert_ptr_null(db);
	ck_assert(!h_exists(fx_path("%s/missing", fx_dir)));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Full disk                                                                */
/* ------------------------------------------------------------------------ */

/* Open @dir and read partition 0 of "t": exactly @n records tagged as in
 * @acked, then verify.  Returns 0, or the first error (message kept in
 * full_msg). */
static char full_msg[1024];

static int read_back(const char *dir, char (*acked)[16], uint64_t n)
{
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	mqlog_reader *r = NULL;
	mqlog_record rec;
	uint64_t i = 0;
	int rc;

	rc = mqlog_open(dir, NULL, &db);
	if (rc == 0)
		rc = mqlog_topic_open(db, "t", &t);
	if (rc == 0)
		rc = mqlog_reader_open(t, 0, &r);
	while (rc == 0 && (rc = mqlog_reader_next(r, &rec)) == 1) {
		ck_assert_uint_lt(i, n);
		ck_assert_uint_eq(rec.offset, i);
		ck_assert_msg(rec.value.len >= 15 &&
				      memcmp(rec.value.data, acked[i], 15) == 0,
			      "offset %" PRIu64 " of %" PRIu64
			      ": '%.15s' (len %zu), "
			      "appended as '%s'",
			      i, n, (const char *)rec.value.data, rec.value.len,
			      acked[i]);
		i++;
		rc = 0;
	}
	if (rc == 0)
		ck_assert_uint_eq(i, n);
	if (rc == 0)
		rc = mqlog_verify(db, NULL, NULL, NULL, NULL);
	if (rc != 0)
		snprintf(full_msg, sizeof full_msg, "%s", mqlog_errmsg(db));
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
	return rc;
}

/* Appending until a 2 MiB file system is full ends in -ENOSPC (or
 * MQLOG_EIO), never a crash; every acknowledged record survives close and
 * reopen, and verify is clean. */
START_TEST(test_full_disk)
{
	char mnt[4096], dir[4096];
	mqlog *db;
	mqlog_topic *t;
	mqlog_topic_config c = h_cfg(1, 256 * 1024, MQLOG_SYNC_NONE);
	static char big[4000];
	static char acked[4000][16]; /* value tag of each acknowledged offset */
	uint64_t n = 0;
	int first_err = 0, full_rc, rc;

	if (mount_tmpfs("full", "2m", mnt) != 0)
		return;
	snprintf(dir, sizeof dir, "%s/db", mnt);
	db = h_open(dir);
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (int i = 0; i < 4000; i++) {
		mqlog_msg m;
		uint64_t base = 0;
		size_t len = i % 7 == 6 ? 16 : sizeof big;
		snprintf(big, 16, "%015d", i);
		memset(big + 15, 'f', sizeof big - 15);
		m = h_msg("", 1);
		m.value = (mqlog_bytes){ big, len };
		rc = mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, &base);
		if (rc == 0) {
			ck_assert_uint_eq(base, n);
			ck_assert_uint_lt(n, 4000);
			memcpy(acked[n], big, 15);
			acked[n][15] = '\0';
			n++;
			if (first_err && i > first_err + 20)
				break;
			continue;
		}
		ck_assert_msg(rc == -ENOSPC || rc == MQLOG_EIO,
			      "append on a full disk: %d %s: %s", rc,
			      mqlog_errname(rc), mqlog_errmsg(db));
		H_ASSERT_MSG(db);
		ck_assert_uint_eq(h_info(t, 0).end_offset, n);
		if (!first_err)
			first_err = i;
		else if (i > first_err + 20)
			break;
	}
	ck_assert_msg(first_err > 0, "the disk never filled up");
	ck_assert_uint_gt(n, 100);
	mqlog_topic_close(t);
	mqlog_close(db);

	/* Reopen on the still-full disk: the acknowledged records must be
	 * readable (reading must not depend on writing derived data). */
	full_rc = read_back(dir, acked, n);

	/* Give the file system room and check again: nothing was lost. */
	ck_assert_int_eq(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=4m"),
			 0);
	ck_assert_int_eq(read_back(dir, acked, n), 0);
	ck_assert_msg(full_rc == 0,
		      "on the full disk the acknowledged records could not be "
		      "read back: %d %s: %s",
		      full_rc, mqlog_errname(full_rc), full_msg);
	ck_assert_int_eq(umount2(mnt, MNT_DETACH), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Bad argument values                                                      */
/* ------------------------------------------------------------------------ */

/* Out-of-range partitions, count 0 and a null header key are MQLOG_EINVAL;
 * closing NULL handles is a no-op. */
START_TEST(test_bad_values)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(3, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	mqlog_reader *r = NULL;
	struct mqlog_partition_info info;
	mqlog_msg m = h_msg("x", 1);
	mqlog_header h = { { NULL, 0 }, { "v", 1 } };

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	ck_assert_int_eq(mqlog_append(t, 3, &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			 MQLOG_EINVAL);
	H_ASSERT_MSG(db);
	ck_assert_int_eq(mqlog_append(t, 0, &m, 0, MQLOG_SYNC_DEFAULT, NULL),
			 MQLOG_EINVAL);
	H_ASSERT_MSG(db);
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, 7, NULL), MQLOG_EINVAL);
	m.headers = &h;
	m.header_count = 1;
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_reader_open(t, 3, &r), MQLOG_EINVAL);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(mqlog_partition_stat(t, 3, &info), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_partition_stat(t, UINT32_MAX, &info),
			 MQLOG_EINVAL);
	for (uint32_t p = 0; p < 3; p++)
		ck_assert_uint_eq(h_info(t, p).end_offset, 0);

	mqlog_reader_close(NULL);
	mqlog_topic_close(NULL);
	mqlog_topic_close(t);
	mqlog_close(NULL);
	mqlog_close(db);
	ck_assert_ptr_nonnull(mqlog_errmsg(NULL));
}
END_TEST

/* Opening a missing directory without CREATE is MQLOG_ENOENT and creates
 * nothing; a path that is a regular file or empty is an error that leaves
 * it untouched. */
START_TEST(test_bad_paths)
{
	mqlog_options o;
	static char sentinel;
	mqlog *const sent = (mqlog *)(void *)&sentinel;
	mqlog *db = sent;
	char file[4096];
	static const char content[] = "not a data directory\n";
	size_t len;
	unsigned char *back;
	int rc;

	snprintf(file, sizeof file, "%s/plain", fx_dir);
	mqlog_options_init(&o);
	o.flags = 0;
	rc = mqlog_open(fx_path("%s/missing", fx_dir), &o, &db);
	ck_assert_int_eq(rc, MQLOG_ENOENT);
	ck_assert_ptr_eq(db, sent);
	H_ASSERT_MSG(NULL);
	ck_assert_msg(h_contains(mqlog_errmsg(NULL), "missing"), "%s",
		      mqlog_errmsg(NULL));
	ck_assert(!h_exists(fx_path("%s/missing", fx_dir)));

	{
		FILE *f = fopen(file, "w");
		ck_assert_ptr_nonnull(f);
		fputs(content, f);
		fclose(f);
	}
	for (int create = 0; create < 2; create++) {
		o.flags = create ? MQLOG_OPEN_CREATE : 0;
		rc = mqlog_open(file, &o, &db);
		ck_assert_int_lt(rc, 0);
		ck_assert_ptr_eq(db, sent);
		H_ASSERT_MSG(NULL);
	}
	rc = mqlog_open(file, NULL, &db);
	ck_assert_int_lt(rc, 0);
	ck_assert_ptr_eq(db, sent);
	back = h_slurp(file, &len);
	ck_assert_uint_eq(len, strlen(content));
	ck_assert(memcmp(back, content, len) == 0);
	free(back);

	rc = mqlog_open("", NULL, &db);
	ck_assert_int_lt(rc, 0);
	ck_assert_ptr_eq(db, sent);
	H_ASSERT_MSG(NULL);

	/* A directory whose LMDB file is garbage is refused, not crashed on. */
	ck_assert_int_eq(mkdir(fx_path("%s/junk", fx_dir), 0755), 0);
	ck_assert_int_eq(mkdir(fx_path("%s/junk/meta", fx_dir), 0755), 0);
	{
		static unsigned char junk[65536];
		uint64_t seed = 5;
		FILE *f = fopen(fx_path("%s/junk/meta/data.mdb", fx_dir), "w");
		ck_assert_ptr_nonnull(f);
		for (size_t i = 0; i < sizeof junk; i++)
			junk[i] = (unsigned char)h_rand(&seed);
		ck_assert_uint_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
		fclose(f);
	}
	rc = mqlog_open(fx_path("%s/junk", fx_dir), NULL, &db);
	ck_assert_int_lt(rc, 0);
	ck_assert_ptr_eq(db, sent);
	H_ASSERT_MSG(NULL);
}
END_TEST

/* Every MQLOG_E* code and negated errno values have a name and a message;
 * unknown codes still get a string. */
START_TEST(test_strerror_errname)
{
	static const struct {
		int code;
		const char *name;
		const char *msg;
	} table[] = {
#define ROW_(n, c, m) { MQLOG_##n, "MQLOG_" #n, m },
		MQLOG_ERROR_MAP(ROW_)
#undef ROW_
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		ck_assert_str_eq(mqlog_errname(table[i].code), table[i].name);
		ck_assert_str_eq(mqlog_strerror(table[i].code), table[i].msg);
	}
	/* Codes are distinct and in the reserved block, far below errno. */
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		ck_assert_int_le(table[i].code, -30601);
		ck_assert_int_gt(table[i].code, -30700);
		for (size_t j = 0; j < i; j++)
			ck_assert_int_ne(table[i].code, table[j].code);
	}
	ck_assert_int_eq(MQLOG_EINVAL, -30601);
	ck_assert_int_eq(MQLOG_EDELETED, -30615);

	ck_assert_str_eq(mqlog_errname(-ENOSPC), "ENOSPC");
	ck_assert_msg(h_contains(mqlog_strerror(-ENOSPC), "space"), "%s",
		      mqlog_strerror(-ENOSPC));
	ck_assert_str_eq(mqlog_errname(-EACCES), "EACCES");
	ck_assert_str_eq(mqlog_errname(-EROFS), "EROFS");
	ck_assert_str_eq(mqlog_errname(-EIO), "EIO");
	ck_assert_str_ne(mqlog_strerror(-EIO), "");
	ck_assert_ptr_nonnull(mqlog_strerror(0));
	ck_assert_str_ne(mqlog_strerror(0), "");
	ck_assert_ptr_nonnull(mqlog_errname(0));
	ck_assert_ptr_nonnull(mqlog_strerror(-99999));
	ck_assert_str_ne(mqlog_strerror(-99999), "");
	ck_assert_ptr_nonnull(mqlog_errname(-99999));
	ck_assert_ptr_nonnull(mqlog_strerror(12345));
	ck_assert_ptr_nonnull(mqlog_errname(12345));
	ck_assert_ptr_nonnull(mqlog_strerror(INT32_MIN));
	ck_assert_ptr_nonnull(mqlog_errname(INT32_MIN));
}
END_TEST

struct msg_thread {
	mqlog *db;	    /* shared directory */
	char before[512];   /* this thread's message after its own failure */
	char after[512];    /* the same, after the main thread failed too */
	int rc;		    /* its failure code */
	int step;	    /* handshake: 1 failed, 2 main failed */
	pthread_mutex_t mu; /* protects step */
	pthread_cond_t cv;  /* signals step changes */
};

static void *msg_thread_run(void *arg)
{
	struct msg_thread *m = arg;
	mqlog_topic *t = NULL;
	m->rc = mqlog_topic_open(m->db, "thread-topic-xyz", &t);
	snprintf(m->before, sizeof m->before, "%s", mqlog_errmsg(m->db));
	pthread_mutex_lock(&m->mu);
	m->step = 1;
	pthread_cond_broadcast(&m->cv);
	while (m->step != 2)
		pthread_cond_wait(&m->cv, &m->mu);
	pthread_mutex_unlock(&m->mu);
	snprintf(m->after, sizeof m->after, "%s", mqlog_errmsg(m->db));
	return NULL;
}

/* mqlog_errmsg is per thread: another thread's failure does not replace
 * the message of this one. */
START_TEST(test_errmsg_per_thread)
{
	static struct msg_thread m;
	pthread_t th;
	int rc;
	m.db = h_open(dbdir());
	m.step = 0;
	pthread_mutex_init(&m.mu, NULL);
	pthread_cond_init(&m.cv, NULL);
	ck_assert_int_eq(pthread_create(&th, NULL, msg_thread_run, &m), 0);
	pthread_mutex_lock(&m.mu);
	while (m.step != 1)
		pthread_cond_wait(&m.cv, &m.mu);
	pthread_mutex_unlock(&m.mu);

	rc = mqlog_topic_create(m.db, "bad name", NULL);
	ck_assert_int_eq(rc, MQLOG_EINVAL);
	pthread_mutex_lock(&m.mu);
	m.step = 2;
	pthread_cond_broadcast(&m.cv);
	pthread_mutex_unlock(&m.mu);
	pthread_join(th, NULL);

	ck_assert_int_eq(m.rc, MQLOG_ENOENT);
	ck_assert_msg(strstr(m.before, "thread-topic-xyz") != NULL, "%s",
		      m.before);
	ck_assert_str_eq(m.after, m.before);
	ck_assert_msg(strstr(mqlog_errmsg(m.db), "thread-topic-xyz") == NULL,
		      "main thread sees the other thread's message: %s",
		      mqlog_errmsg(m.db));
	pthread_mutex_destroy(&m.mu);
	pthread_cond_destroy(&m.cv);
	mqlog_close(m.db);
}
END_TEST

static Suite *errors_suite(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_readonly_dir);
	tcase_add_test(tc, test_open_rdonly_flag);
	tcase_add_test(tc, test_full_disk);
	tcase_add_test(tc, test_bad_values);
	tcase_add_test(tc, test_bad_paths);
	tcase_add_test(tc, test_strerror_errname);
	tcase_add_test(tc, test_errmsg_per_thread);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	char *base = fx_tmpdir();
	int nf;
	if (!base)
		return 1;
	snprintf(mnt_base, sizeof mnt_base, "%s", base);
	sr = srunner_create(errors_suite());
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	/* A failed test leaves its mount behind: detach whatever is there. */
	if (geteuid() == 0) {
		umount2(fx_path("%s/ro", mnt_base), MNT_DETACH);
		umount2(fx_path("%s/full", mnt_base), MNT_DETACH);
	}
	fx_rmtree(mnt_base);
	free(base);
	return nf == 0 ? 0 : 1;
}
