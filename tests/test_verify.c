/*
 * test_verify.c - inspection and repair: mqlog_scan_file and
 * mqlog_scan_partition see every batch and record, stop at garbage, accept
 * empty and zero-filled tails; mqlog_verify counts a clean directory
 * exactly and reports damage in detail; mqlog_recover reports what it did.
 */
#include "helpers.h"

static const char *dbdir(void)
{
	return fx_dir;
}

/* What a scan saw. */
struct seen {
	uint64_t batches;     /* on_batch calls */
	uint64_t records;     /* on_record calls */
	uint64_t next_offset; /* expected next record offset */
	uint64_t next_pos;    /* expected next batch position in its file */
	char file[4096];      /* file of the last batch */
	int files;	      /* distinct files seen, in order */
	int bad;	      /* inconsistencies seen */
	uint64_t stop_after;  /* return 42 from this on_batch call (0: never) */
	uint64_t rec_in_batch; /* records seen in the current batch */
	uint32_t cur_count;    /* record_count of the current batch */
	int64_t cur_max_ts;    /* max timestamp seen in the current batch */
};

static int on_batch(void *arg, const mqlog_batch_info *b)
{
	struct seen *s = arg;
	if (s->batches && s->rec_in_batch != s->cur_count)
		s->bad++;
	if (!b->file || strcmp(b->file, s->file) != 0) {
		snprintf(s->file, sizeof s->file, "%s", b->file ? b->file : "");
		s->files++;
		s->next_pos = 0;
	}
	if (b->position != s->next_pos || b->base_offset != s->next_offset ||
	    b->record_count == 0 || b->length < H_BATCH_HDR ||
	    b->max_timestamp < b->first_timestamp)
		s->bad++;
	s->next_pos = b->position + b->length;
	s->batches++;
	s->rec_in_batch = 0;
	s->cur_count = b->record_count;
	s->cur_max_ts = INT64_MIN;
	if (s->stop_after && s->batches == s->stop_after)
		return 42;
	return 0;
}

static int on_record(void *arg, const mqlog_batch_info *b,
		     const mqlog_record *rec)
{
	struct seen *s = arg;
	char want[32];
	int len = snprintf(want, sizeof want, "v%" PRIu64, rec->offset);
	if (rec->offset != s->next_offset ||
	    rec->offset != b->base_offset + s->rec_in_batch ||
	    rec->value.len != (size_t)len ||
	    memcmp(rec->value.data, want, (size_t)len) != 0 ||
	    rec->timestamp != 1000 + (int64_t)rec->offset)
		s->bad++;
	if (s->rec_in_batch == 0 && rec->timestamp != b->first_timestamp)
		s->bad++;
	if (rec->timestamp > b->max_timestamp)
		s->bad++;
	s->next_offset++;
	s->rec_in_batch++;
	s->records++;
	return 0;
}

static const mqlog_scan_ops ops = { on_batch, on_record };

/* Append @batches batches of 1..3 records "v<offset>" with timestamps
 * 1000 + offset to partition @part; returns the number of records. */
static uint64_t fill(mqlog_topic *t, uint32_t part, int batches)
{
	char vals[3][32];
	mqlog_msg m[3];
	uint64_t off = h_info(t, part).end_offset;
	for (int b = 0; b < batches; b++) {
		size_t k = 1 + (size_t)b % 3;
		for (size_t j = 0; j < k; j++) {
			snprintf(vals[j], sizeof vals[j], "v%" PRIu64, off + j);
			m[j] = h_msg(vals[j], 1000 + (int64_t)(off + j));
		}
		ck_assert_int_eq(mqlog_append(t, part, m, k, MQLOG_SYNC_DEFAULT,
					      NULL),
				 0);
		off += k;
	}
	return off;
}

static void make_topic(const char *name, uint32_t parts, uint64_t seg,
		       int batches)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(parts, seg, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	c.index_interval_bytes = 256;
	h_create(db, name, &c);
	t = h_topic(db, name);
	for (uint32_t p = 0; p < parts; p++)
		fill(t, p, batches);
	mqlog_topic_close(t);
	mqlog_close(db);
}

static uint64_t records_of(int batches)
{
	uint64_t n = 0;
	for (int b = 0; b < batches; b++)
		n += 1 + (uint64_t)b % 3;
	return n;
}

/* ------------------------------------------------------------------------ */

/* Scanning a segment file sees every batch in order and every record of
 * each, with consistent batch details. */
START_TEST(test_scan_file)
{
	struct seen s;
	char seg[4096];
	int rc;
	make_topic("t", 1, 1 << 20, 30);
	snprintf(seg, sizeof seg, "%s", h_seg_path(dbdir(), "t", 0, 0));

	memset(&s, 0, sizeof s);
	rc = mqlog_scan_file(seg, &ops, &s);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(s.batches, 30);
	ck_assert_uint_eq(s.records, records_of(30));
	ck_assert_int_eq(s.bad, 0);
	ck_assert_int_eq(s.files, 1);
	ck_assert_msg(strstr(s.file, "00000000000000000000.seg") != NULL, "%s",
		      s.file);
	ck_assert_uint_eq(s.next_pos, h_size(seg));

	/* A callback's non-zero return stops the scan and is returned. */
	memset(&s, 0, sizeof s);
	s.stop_after = 3;
	ck_assert_int_eq(mqlog_scan_file(seg, &ops, &s), 42);
	ck_assert_uint_eq(s.batches, 3);
	ck_assert_uint_le(s.records, records_of(3));
}
END_TEST

/* A file of random bytes is MQLOG_ECORRUPT (no batch reported); an empty
 * or all-zero file is a clean, empty scan; a missing file is an error. */
START_TEST(test_scan_file_garbage_and_empty)
{
	static unsigned char junk[8192];
	uint64_t seed = 11;
	struct seen s;
	char garbage[4096], empty[4096], zeros[4096];
	FILE *f;

	snprintf(garbage, sizeof garbage, "%s/garbage.seg", fx_dir);
	snprintf(empty, sizeof empty, "%s/empty.seg", fx_dir);
	snprintf(zeros, sizeof zeros, "%s/zeros.seg", fx_dir);
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)h_rand(&seed);
	f = fopen(garbage, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
	fclose(f);
	f = fopen(empty, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	memset(junk, 0, sizeof junk);
	f = fopen(zeros, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
	fclose(f);

	memset(&s, 0, sizeof s);
	ck_assert_int_eq(mqlog_scan_file(garbage, &ops, &s), MQLOG_ECORRUPT);
	ck_assert_uint_eq(s.batches, 0);
	ck_assert_uint_eq(s.records, 0);
	H_ASSERT_MSG(NULL);
	ck_assert_msg(h_contains(mqlog_errmsg(NULL), "garbage.seg"), "%s",
		      mqlog_errmsg(NULL));

	memset(&s, 0, sizeof s);
	ck_assert_int_eq(mqlog_scan_file(empty, &ops, &s), 0);
	ck_assert_uint_eq(s.batches, 0);

	memset(&s, 0, sizeof s);
	ck_assert_int_eq(mqlog_scan_file(zeros, &ops, &s), 0);
	ck_assert_uint_eq(s.batches, 0);

	memset(&s, 0, sizeof s);
	ck_assert_int_lt(
		mqlog_scan_file(fx_path("%s/none.seg", fx_dir), &ops, &s), 0);
	H_ASSERT_MSG(NULL);
}
END_TEST

/* A valid segment followed by garbage scans every valid batch and then
 * reports MQLOG_ECORRUPT at the garbage's position; followed by zeros it
 * is clean. */
START_TEST(test_scan_file_tail)
{
	unsigned char junk[300];
	uint64_t seed = 3, size;
	struct seen s;
	char seg[4096], pos[32];
	make_topic("t", 1, 1 << 20, 20);
	snprintf(seg, sizeof seg, "%s", h_seg_path(dbdir(), "t", 0, 0));
	size = h_size(seg);
	snprintf(pos, sizeof pos, "%" PRIu64, size);

	memset(junk, 0, sizeof junk);
	ck_assert_int_eq(fx_append_bytes(seg, junk, sizeof junk), 0);
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(mqlog_scan_file(seg, &ops, &s), 0);
	ck_assert_uint_eq(s.batches, 20);
	ck_assert_int_eq(s.bad, 0);

	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)(h_rand(&seed) | 1);
	ck_assert_int_eq(fx_truncate(seg, size), 0);
	ck_assert_int_eq(fx_append_bytes(seg, junk, sizeof junk), 0);
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(mqlog_scan_file(seg, &ops, &s), MQLOG_ECORRUPT);
	ck_assert_uint_eq(s.batches, 20);
	ck_assert_uint_eq(s.records, records_of(20));
	ck_assert_int_eq(s.bad, 0);
	ck_assert_msg(h_contains(mqlog_errmsg(NULL), pos),
		      "message does not name byte %s: %s", pos,
		      mqlog_errmsg(NULL));
}
END_TEST

/* Scanning a partition walks every segment in order, every batch and
 * record once. */
START_TEST(test_scan_partition)
{
	mqlog *db;
	mqlog_topic *t;
	struct seen s;
	uint64_t bases[64];
	size_t nseg;
	make_topic("t", 2, 4096, 150);
	nseg = h_seg_list(dbdir(), "t", 1, bases, 64);
	ck_assert_uint_ge(nseg, 3);

	db = h_open(dbdir());
	t = h_topic(db, "t");
	for (uint32_t p = 0; p < 2; p++) {
		memset(&s, 0, sizeof s);
		ck_assert_int_eq(mqlog_scan_partition(t, p, &ops, &s), 0);
		ck_assert_uint_eq(s.batches, 150);
		ck_assert_uint_eq(s.records, records_of(150));
		ck_assert_int_eq(s.bad, 0);
		ck_assert_int_eq(s.files, (int)nseg);
	}
	memset(&s, 0, sizeof s);
	s.stop_after = 100;
	ck_assert_int_eq(mqlog_scan_partition(t, 0, &ops, &s), 42);
	ck_assert_uint_eq(s.batches, 100);
	ck_assert_int_lt(mqlog_scan_partition(t, 2, &ops, &s), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* verify on a clean directory returns 0 with exact counts. */
START_TEST(test_verify_clean_stats)
{
	mqlog *db;
	mqlog_verify_stats st;
	uint64_t segs = 0, bytes = 0;
	int problems = 0;
	make_topic("a", 2, 4096, 120);
	make_topic("b", 3, 1 << 20, 10);
	for (uint32_t p = 0; p < 2; p++) {
		uint64_t bases[64];
		size_t n = h_seg_list(dbdir(), "a", p, bases, 64);
		segs += n;
		for (size_t i = 0; i < n; i++)
			bytes += h_size(h_seg_path(dbdir(), "a", p, bases[i]));
	}
	ck_assert_uint_ge(segs, 6);

	db = h_open(dbdir());
	memset(&st, 0xff, sizeof st);
	ck_assert_int_eq(mqlog_verify(db, "a", NULL, &problems, &st), 0);
	ck_assert_uint_eq(st.topics, 1);
	ck_assert_uint_eq(st.partitions, 2);
	ck_assert_uint_eq(st.segments, segs);
	ck_assert_uint_eq(st.batches, 2 * 120);
	ck_assert_uint_eq(st.records, 2 * records_of(120));
	ck_assert_uint_eq(st.bytes, bytes);
	ck_assert_uint_gt(st.index_entries, 0);
	ck_assert_uint_eq(st.problems, 0);

	memset(&st, 0xff, sizeof st);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, &st), 0);
	ck_assert_uint_eq(st.topics, 2);
	ck_assert_uint_eq(st.partitions, 5);
	ck_assert_uint_eq(st.batches, 2 * 120 + 3 * 10);
	ck_assert_uint_eq(st.records, 2 * records_of(120) + 3 * records_of(10));
	ck_assert_uint_eq(st.problems, 0);

	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	ck_assert_int_eq(mqlog_verify(db, "nope", NULL, NULL, NULL),
			 MQLOG_ENOENT);
	mqlog_close(db);
}
END_TEST

struct problem_log {
	int count;	    /* problems reported */
	char topic[256];    /* first problem: topic */
	uint32_t partition; /* first problem: partition */
	char file[4096];    /* first problem: file */
	uint64_t position;  /* first problem: position */
	char what[256];	    /* first problem: description */
};

static void log_problem(void *arg, const char *topic, uint32_t partition,
			const char *file, uint64_t position, const char *what)
{
	struct problem_log *pl = arg;
	if (pl->count++ == 0) {
		snprintf(pl->topic, sizeof pl->topic, "%s", topic ? topic : "");
		pl->partition = partition;
		snprintf(pl->file, sizeof pl->file, "%s", file ? file : "");
		pl->position = position;
		snprintf(pl->what, sizeof pl->what, "%s", what ? what : "");
	}
}

/* A damaged batch in the middle of a sealed segment makes verify return
 * MQLOG_ECORRUPT and report topic, partition, file, position and reason;
 * the file is not changed. */
START_TEST(test_verify_corrupt_middle)
{
	mqlog *db;
	struct h_batch b[128];
	struct problem_log pl;
	mqlog_verify_stats st;
	uint64_t bases[64], size;
	size_t nseg, nb;
	char seg[4096];
	make_topic("t", 2, 4096, 120);
	nseg = h_seg_list(dbdir(), "t", 1, bases, 64);
	ck_assert_uint_ge(nseg, 3);
	snprintf(seg, sizeof seg, "%s", h_seg_path(dbdir(), "t", 1, bases[1]));
	nb = h_walk(seg, b, 128, NULL);
	ck_assert_uint_ge(nb, 3);
	size = h_size(seg);
	/* Damage the body of the middle batch of the second segment. */
	ck_assert_int_eq(fx_flip_bit(seg, b[nb / 2].pos + b[nb / 2].len - 2, 5),
			 0);

	db = h_open(dbdir());
	memset(&pl, 0, sizeof pl);
	memset(&st, 0, sizeof st);
	ck_assert_int_eq(mqlog_verify(db, NULL, log_problem, &pl, &st),
			 MQLOG_ECORRUPT);
	ck_assert_int_ge(pl.count, 1);
	ck_assert_uint_ge(st.problems, (uint64_t)pl.count);
	ck_assert_str_eq(pl.topic, "t");
	ck_assert_uint_eq(pl.partition, 1);
	ck_assert_msg(strstr(pl.file, strrchr(seg, '/') + 1) != NULL,
		      "problem names %s, not %s", pl.file, seg);
	ck_assert_uint_eq(pl.position, b[nb / 2].pos);
	ck_assert_str_ne(pl.what, "");
	/* Partition 0 was still counted. */
	ck_assert_uint_ge(st.records, records_of(120));
	/* Problems may be NULL. */
	ck_assert_int_eq(mqlog_verify(db, "t", NULL, NULL, NULL),
			 MQLOG_ECORRUPT);
	mqlog_close(db);
	ck_assert_uint_eq(h_size(seg), size);
}
END_TEST

/* Damage in the active segment, checked by verify without opening the
 * topic first, is reported and left in place (verify changes nothing). */
START_TEST(test_verify_corrupt_active)
{
	mqlog *db;
	struct h_batch b[128];
	struct problem_log pl;
	uint64_t size;
	size_t nb;
	char seg[4096];
	make_topic("t", 1, 1 << 20, 40);
	snprintf(seg, sizeof seg, "%s", h_seg_path(dbdir(), "t", 0, 0));
	nb = h_walk(seg, b, 128, NULL);
	ck_assert_uint_eq(nb, 40);
	size = h_size(seg);
	ck_assert_int_eq(fx_flip_bit(seg, b[10].pos + 40, 1), 0);

	db = h_open(dbdir());
	memset(&pl, 0, sizeof pl);
	ck_assert_int_eq(mqlog_verify(db, NULL, log_problem, &pl, NULL),
			 MQLOG_ECORRUPT);
	ck_assert_int_ge(pl.count, 1);
	ck_assert_uint_eq(pl.position, b[10].pos);
	ck_assert_uint_eq(h_size(seg), size);
	mqlog_close(db);
	ck_assert_uint_eq(h_size(seg), size);
}
END_TEST

/* recover on a clean directory reports its partitions, nothing truncated
 * and the index entries it rewrote; on a torn tail it reports the bytes it
 * removed. */
START_TEST(test_recover_stats)
{
	mqlog *db;
	mqlog_topic *t;
	mqlog_recover_stats st;
	unsigned char junk[123];
	uint64_t seed = 77, bases[64], size;
	size_t nseg;
	char seg[4096];

	make_topic("t", 3, 4096, 60);
	db = h_open(dbdir());
	memset(&st, 0xff, sizeof st);
	ck_assert_int_eq(mqlog_recover(db, NULL, &st), 0);
	ck_assert_uint_eq(st.partitions, 3);
	ck_assert_uint_eq(st.truncated_bytes, 0);
	ck_assert_uint_gt(st.index_entries, 0);
	ck_assert_int_eq(mqlog_recover(db, "t", NULL), 0);
	ck_assert_int_eq(mqlog_recover(db, "nope", NULL), MQLOG_ENOENT);
	mqlog_close(db);

	nseg = h_seg_list(dbdir(), "t", 2, bases, 64);
	snprintf(seg, sizeof seg, "%s",
		 h_seg_path(dbdir(), "t", 2, bases[nseg - 1]));
	size = h_size(seg);
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)(h_rand(&seed) | 0x80);
	ck_assert_int_eq(fx_append_bytes(seg, junk, sizeof junk), 0);

	db = h_open(dbdir());
	memset(&st, 0, sizeof st);
	ck_assert_int_eq(mqlog_recover(db, "t", &st), 0);
	ck_assert_uint_eq(st.partitions, 3);
	ck_assert_uint_eq(st.truncated_bytes, sizeof junk);
	ck_assert_uint_eq(h_size(seg), size);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 2).end_offset, records_of(60));
	ck_assert_uint_eq(h_append1(t, 2, "v0"), records_of(60));
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

static Suite *verify_suite(void)
{
	Suite *s = suite_create("verify");
	TCase *tc = tcase_create("verify");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_scan_file);
	tcase_add_test(tc, test_scan_file_garbage_and_empty);
	tcase_add_test(tc, test_scan_file_tail);
	tcase_add_test(tc, test_scan_partition);
	tcase_add_test(tc, test_verify_clean_stats);
	tcase_add_test(tc, test_verify_corrupt_middle);
	tcase_add_test(tc, test_verify_corrupt_active);
	tcase_add_test(tc, test_recover_stats);
	suite_add_tcase(s, tc);
	return s;
}

H_MAIN(verify_suite)
