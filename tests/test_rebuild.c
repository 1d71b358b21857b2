/*
 * test_rebuild.c - the derived index is only a cache of the log: losing it,
 * or finding it wrong, never changes what a reader sees, and recovery
 * rebuilds it with identical lookups.  Also the crash-interrupted topic
 * create and delete states that the first opener must finish or undo.
 */
#include "helpers.h"

#include "engine.h"

#include <sys/wait.h>

#define TOPIC  "events"
#define NBATCH 120

/* Fill partition 0 with batches of 1..7 records with shuffled timestamps. */
static void fill(mqlog *db)
{
	mqlog_topic_config cfg;
	mqlog_topic *t;
	char val[64];

	mqlog_topic_config_init(&cfg);
	cfg.partitions = 2;
	cfg.segment_bytes = 4096;
	cfg.index_interval_bytes = 256;
	ck_assert_int_eq(mqlog_topic_create(db, TOPIC, &cfg), 0);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	for (int b = 0; b < NBATCH; b++) {
		mqlog_msg m[7];
		int n = 1 + b % 7;
		for (int i = 0; i < n; i++) {
			snprintf(val, sizeof val, "b%d-r%d", b, i);
			m[i] = (mqlog_msg){
				.key = { "k", 1 },
				.value = { strdup(val), strlen(val) },
				.timestamp = 10000 + b * 10 +
					     ((b * 7 + i * 3) % 13) - 6
			};
		}
		ck_assert_int_eq(mqlog_append(t, 0, m, (size_t)n,
					      MQLOG_SYNC_DEFAULT, NULL),
				 0);
		for (int i = 0; i < n; i++)
			free((void *)(uintptr_t)m[i].value.data);
	}
	mqlog_topic_close(t);
}

/* Every lookup a reader can do, as one comparable trace. */
struct trace {
	uint64_t by_offset[1024]; /* offset found when seeking to i */
	uint64_t by_time[1400];	  /* offset found for timestamp 9900 + i */
	size_t noff;		  /* entries in by_offset */
};

static void take_trace(mqlog *db, struct trace *tr)
{
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;
	mqlog_partition_info pi;

	memset(tr, 0, sizeof *tr);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	ck_assert_int_eq(mqlog_partition_stat(t, 0, &pi), 0);
	ck_assert_uint_lt(pi.end_offset, 1024);
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	tr->noff = pi.end_offset;
	for (uint64_t o = 0; o < pi.end_offset; o++) {
		ck_assert_int_eq(mqlog_reader_seek(r, o), 0);
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		tr->by_offset[o] = rec.offset;
	}
	for (int i = 0; i < 1400; i++) {
		ck_assert_int_eq(mqlog_reader_seek_time(r, 9900 + i), 0);
		tr->by_time[i] = mqlog_reader_position(r);
	}
	mqlog_reader_close(r);
	mqlog_topic_close(t);
}

static uint64_t verify_entries(mqlog *db, int *rc)
{
	mqlog_verify_stats st;

	*rc = mqlog_verify(db, NULL, NULL, NULL, &st);
	return st.index_entries;
}

START_TEST(test_meta_deleted)
{
	/* Deleting the whole metadata environment loses nothing: topics are
	 * adopted from their topic.conf and every lookup is the same. */
	mqlog *db;
	struct trace before, after;
	mqlog_topic_config a, b;
	mqlog_topic *t;
	int rc;

	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	fill(db);
	take_trace(db, &before);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	mqlog_topic_config_get(t, &a);
	mqlog_topic_close(t);
	mqlog_close(db);

	fx_rmtree(fx_path("%s/meta", fx_dir));
	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	mqlog_topic_config_get(t, &b);
	ck_assert_mem_eq(&a, &b, sizeof a);
	mqlog_topic_close(t);
	take_trace(db, &after);
	ck_assert_uint_eq(before.noff, after.noff);
	ck_assert_mem_eq(before.by_offset, after.by_offset,
			 sizeof before.by_offset);
	ck_assert_mem_eq(before.by_time, after.by_time, sizeof before.by_time);
	/* The index came back: verify checks entries against the log. */
	ck_assert_uint_gt(verify_entries(db, &rc), 10);
	ck_assert_int_eq(rc, 0);
	/* A new topic does not reuse the adopted topic's id. */
	ck_assert_int_eq(mqlog_topic_create(db, "other", NULL), 0);
	mqlog_close(db);
}
END_TEST

START_TEST(test_garbled_entries)
{
	/* Index entries that point at the wrong bytes never change what a
	 * reader returns; verify reports them and recover rewrites them. */
	mqlog *db;
	mqlog_topic *t;
	struct trace before, after;
	struct index_entry bad[3];
	struct time_entry tbad[1];
	int rc;

	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	fill(db);
	take_trace(db, &before);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	/* Offset 5 said to be at byte 3 of segment 0; offset 40 at a
	 * position past its segment; offset 80 in a segment that does not
	 * exist. */
	bad[0] = (struct index_entry){ 5, 0, 3 };
	bad[1] = (struct index_entry){ 40, 0, 999999 };
	bad[2] = (struct index_entry){ 80, 77, 0 };
	tbad[0] = (struct time_entry){ 10400, 33, 0, 1 };
	ck_assert_int_eq(index_write(db->ix, t->meta.id, 0, bad, 3, tbad, 1,
				     NULL, 0),
			 0);
	mqlog_topic_close(t);
	take_trace(db, &after);
	ck_assert_mem_eq(before.by_offset, after.by_offset,
			 sizeof before.by_offset);
	verify_entries(db, &rc);
	ck_assert_int_eq(rc, MQLOG_ECORRUPT);

	ck_assert_int_eq(mqlog_recover(db, NULL, NULL), 0);
	verify_entries(db, &rc);
	ck_assert_int_eq(rc, 0);
	take_trace(db, &after);
	ck_assert_mem_eq(before.by_offset, after.by_offset,
			 sizeof before.by_offset);
	ck_assert_mem_eq(before.by_time, after.by_time, sizeof before.by_time);
	mqlog_close(db);
}
END_TEST

START_TEST(test_index_cleared_then_reopened)
{
	/* A partition whose derived entries are all gone is re-indexed when
	 * the next epoch opens it. */
	mqlog *db;
	mqlog_topic *t;
	struct trace before, after;
	int rc;

	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	fill(db);
	take_trace(db, &before);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	ck_assert_int_eq(index_clear(db->ix, t->meta.id, 0), 0);
	mqlog_topic_close(t);
	mqlog_close(db);

	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	take_trace(db, &after);
	ck_assert_mem_eq(before.by_offset, after.by_offset,
			 sizeof before.by_offset);
	ck_assert_mem_eq(before.by_time, after.by_time, sizeof before.by_time);
	ck_assert_uint_gt(verify_entries(db, &rc), 10);
	ck_assert_int_eq(rc, 0);
	mqlog_close(db);
}
END_TEST

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

START_TEST(test_interrupted_delete)
{
	/* A delete that died after renaming the directory is finished by
	 * the next opener: the topic is gone from the list and the disk. */
	mqlog *db;
	mqlog_topic *t;
	char **names;
	size_t n;

	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	fill(db);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	uint32_t id = t->meta.id;
	mqlog_topic_close(t);
	mqlog_close(db);
	ck_assert_int_eq(rename(fx_path("%s/topics/%s", fx_dir, TOPIC),
				fx_path("%s/topics/.deleting.%u", fx_dir, id)),
			 0);

	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	ck_assert_int_eq(mqlog_topic_list(db, &names, &n), 0);
	ck_assert_uint_eq(n, 0);
	mqlog_list_free(names, n);
	ck_assert(!exists(fx_path("%s/topics/.deleting.%u", fx_dir, id)));
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), MQLOG_ENOENT);
	/* The name is free again, and the new topic starts empty. */
	ck_assert_int_eq(mqlog_topic_create(db, TOPIC, NULL), 0);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	mqlog_partition_info pi;
	ck_assert_int_eq(mqlog_partition_stat(t, 0, &pi), 0);
	ck_assert_uint_eq(pi.end_offset, 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_interrupted_create)
{
	/* A create that died before its rename leaves no topic behind: the
	 * half-built directory and the metadata entry both go. */
	mqlog *db;
	char **names;
	size_t n;

	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	ck_assert_int_eq(mqlog_topic_create(db, "half", NULL), 0);
	mqlog_close(db);
	/* Rewind the files to the moment before the rename. */
	ck_assert_int_eq(rename(fx_path("%s/topics/half", fx_dir),
				fx_path("%s/topics/.creating.1", fx_dir)),
			 0);

	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	ck_assert_int_eq(mqlog_topic_list(db, &names, &n), 0);
	ck_assert_uint_eq(n, 0);
	mqlog_list_free(names, n);
	ck_assert(!exists(fx_path("%s/topics/.creating.1", fx_dir)));
	ck_assert_int_eq(mqlog_topic_create(db, "half", NULL), 0);
	mqlog_close(db);
}
END_TEST

START_TEST(test_reader_survives_stale_entries_after_truncation)
{
	/* Entries for a torn tail that could not be removed (a full disk at
	 * recovery) never misplace records appended afterwards. */
	mqlog *db;
	mqlog_topic *t;
	mqlog_partition_info pi;
	struct index_entry stale;
	mqlog_reader *r;
	mqlog_record rec;
	uint64_t end;

	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	fill(db);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	ck_assert_int_eq(mqlog_partition_stat(t, 0, &pi), 0);
	end = pi.end_offset;
	/* An entry for the next offset, at a wrong byte position. */
	stale = (struct index_entry){ end + 1, pi.active_base, 7 };
	ck_assert_int_eq(index_write(db->ix, t->meta.id, 0, &stale, 1, NULL, 0,
				     NULL, 0),
			 0);
	for (int i = 0; i < 5; i++) {
		mqlog_msg m = { .value = { "x", 1 },
				.timestamp = MQLOG_TIMESTAMP_NOW };
		ck_assert_int_eq(
			mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL), 0);
	}
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	for (uint64_t o = end; o < end + 5; o++) {
		ck_assert_int_eq(mqlog_reader_seek(r, o), 0);
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		ck_assert_uint_eq(rec.offset, o);
		ck_assert_uint_eq(rec.value.len, 1);
	}
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

static uint64_t lock_epoch(void)
{
	uint64_t e = 0;
	FILE *f = fopen(fx_path("%s/lock", fx_dir), "rb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(&e, sizeof e, 1, f), 1);
	fclose(f);
	return e;
}

START_TEST(test_rdonly_does_not_pin_epoch)
{
	/* A read-only process left open does not keep the next writer from
	 * starting a new epoch, which is what makes it recover the log. */
	mqlog *db;
	mqlog_options o;
	int ready[2], done[2], status;
	char c;
	pid_t pid;
	uint64_t before;

	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	fill(db);
	mqlog_close(db);
	before = lock_epoch();

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(done), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		close(done[1]);
		mqlog_options_init(&o);
		o.flags = MQLOG_OPEN_RDONLY;
		if (mqlog_open(fx_dir, &o, &db) != 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		/* Stay open until the parent closes its end. */
		if (read(done[0], &c, 1) < 0)
			_exit(1);
		mqlog_close(db);
		_exit(0);
	}
	close(ready[1]);
	close(done[0]);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	ck_assert_uint_ne(lock_epoch(), before);
	mqlog_close(db);
	close(done[1]);
	close(ready[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("rebuild");
	TCase *tc = tcase_create("rebuild");

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_test(tc, test_meta_deleted);
	tcase_add_test(tc, test_garbled_entries);
	tcase_add_test(tc, test_index_cleared_then_reopened);
	tcase_add_test(tc, test_interrupted_delete);
	tcase_add_test(tc, test_interrupted_create);
	tcase_add_test(tc, test_reader_survives_stale_entries_after_truncation);
	tcase_add_test(tc, test_rdonly_does_not_pin_epoch);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
