/*
 * test_corruption.c - damage on disk: random bit flips across segments,
 * garbage after and between segments, and a deleted, truncated or garbled
 * LMDB environment.
 *
 * The torn-tail half of the battery (a cut at every byte of the last two
 * batches, also across a roll, and damage to the last batch) lives in
 * test_recovery.c; this file flips bits everywhere else.
 *
 * Pass criterion for every bit flip (10 000 of them, a quarter aimed at
 * the fields of a batch header, the rest anywhere in any segment):
 *   - damage in the active segment is a torn tail: recovery cuts the
 *     segment at the damaged batch, leaving the exact valid prefix, and
 *     verify is clean afterwards;
 *   - damage in a sealed segment is corruption: nothing is truncated,
 *     readers get every record before it and then MQLOG_ECORRUPT, the
 *     segments after it stay readable, mqlog_verify reports it and
 *     `mqlog-tool verify` exits 3;
 *   - no record that is not exactly the one written at its offset is ever
 *     returned, whatever the reader does (read from the start, seek to any
 *     offset);
 *   - nothing crashes.
 *
 * LMDB has no checksums (DESIGN.md): a garbled data.mdb may be opened and
 * read as if it were fine.  What the test asks of the library then: the
 * open fails cleanly or succeeds, and never crashes (the structural check of
 * lmdbcheck.c turns what would crash LMDB into MQLOG_ECORRUPT); when it
 * succeeds, records are still validated against the log (never a wrong
 * record), and recovery plus verify bring the directory back.  Each garbled
 * case runs in a child so that a crash inside LMDB is caught, counted and
 * fails the test; the counts are printed (docs/RELIABILITY.md keeps the
 * last figures).
 */
#include <signal.h>
#include <sys/wait.h>

#include "battery.h"
#include "internal.h"

#define SEED 21
#define VMAX 300

/* ======================================================================== */
/* A pristine directory kept in memory                                      */
/* ======================================================================== */

struct pfile {
	char rel[256]; /* path under the data directory */
	uint8_t *data; /* contents */
	size_t len;    /* bytes */
};

#define MAXSEG 16
#define MAXB   512

static struct {
	char *root;	    /* scratch directory */
	char dir[4200];	    /* the data directory */
	struct pfile f[64]; /* every file but state, lock.mdb */
	int nf;
	uint64_t bases[MAXSEG]; /* segments of t/0 */
	size_t nseg;
	struct h_batch b[MAXSEG][MAXB]; /* their batches */
	size_t nb[MAXSEG];
	uint64_t end;	  /* log end */
	const char *tool; /* mqlog-tool, or NULL */
} P;

static void keep_file(const char *rel)
{
	size_t len;
	unsigned char *d = h_slurp(fx_path("%s/%s", P.dir, rel), &len);
	ck_assert_int_lt(P.nf, 64);
	snprintf(P.f[P.nf].rel, sizeof P.f[P.nf].rel, "%s", rel);
	P.f[P.nf].data = d;
	P.f[P.nf].len = len;
	P.nf++;
}

static void put_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* Put every kept file back as it was (and remove strays). */
static void restore(void)
{
	char meta[4300];
	for (int i = 0; i < P.nf; i++)
		put_file(fx_path("%s/%s", P.dir, P.f[i].rel), P.f[i].data,
			 P.f[i].len);
	snprintf(meta, sizeof meta, "%s/meta/lock.mdb", P.dir);
	unlink(meta);
}

static void build_pristine(void)
{
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog *db;
	mqlog_topic *t;
	uint64_t base;

	memset(&P, 0, sizeof P);
	P.tool = getenv("MQLOG_TOOL");
	P.root = bt_scratch();
	ck_assert_ptr_nonnull(P.root);
	snprintf(P.dir, sizeof P.dir, "%s/db", P.root);
	c.index_interval_bytes = 300;
	db = h_open(P.dir);
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	/* Five sealed segments and an active one about half full. */
	for (;;) {
		mqlog_partition_info info = h_info(t, 0);
		if (info.segments == 6 &&
		    h_size(h_seg_path(P.dir, "t", 0, info.active_base)) > 2000)
			break;
		size_t n = 1 + (size_t)(bt_mix(P.end) % 4);
		ck_assert_int_eq(bt_append(t, SEED, 0, P.end, n, VMAX,
					   MQLOG_SYNC_DEFAULT, &base),
				 0);
		P.end += n;
	}
	mqlog_topic_close(t);
	mqlog_close(db);

	P.nseg = h_seg_list(P.dir, "t", 0, P.bases, MAXSEG);
	ck_assert_uint_eq(P.nseg, 6);
	for (size_t s = 0; s < P.nseg; s++) {
		char rel[256];
		uint64_t end;
		snprintf(rel, sizeof rel, "topics/t/0/%020" PRIu64 ".seg",
			 P.bases[s]);
		keep_file(rel);
		P.nb[s] = h_walk(fx_path("%s/%s", P.dir, rel), P.b[s], MAXB,
				 &end);
		ck_assert_uint_gt(P.nb[s], 0);
		ck_assert_uint_eq(end, P.f[P.nf - 1].len);
	}
	keep_file("topics/t/topic.conf");
	keep_file("meta/data.mdb");
	keep_file("lock");
}

static void free_pristine(void)
{
	for (int i = 0; i < P.nf; i++)
		free(P.f[i].data);
	fx_rmtree(P.root);
	free(P.root);
}

/* Index of the kept file of segment @s. */
static struct pfile *seg_file(size_t s)
{
	return &P.f[s];
}

/* ======================================================================== */
/* Checks                                                                   */
/* ======================================================================== */

/* What the last tool_verify() printed on stderr (its first 512 bytes). */
static char tool_err[512];

/* Run mqlog-tool verify on the directory; its exit status. */
static int tool_verify(void)
{
	pid_t pid;
	int status = 0, fds[2];
	ssize_t k;

	if (!P.tool)
		return -1;
	ck_assert_int_eq(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(fds[1], 2);
		close(fds[0]);
		execl(P.tool, P.tool, "verify", P.dir, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	k = read(fds[0], tool_err, sizeof tool_err - 1);
	tool_err[k > 0 ? k : 0] = '\0';
	while (read(fds[0], &(char[256]){ 0 }, 256) > 0)
		;
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/*
 * Read from @from to the end (or the first error), checking each record
 * against the generator; returns the reader's last result and the offset
 * it reached in *next.
 */
static int read_checked(mqlog_topic *t, uint64_t from, uint64_t *next,
			char *why, size_t cap, int *bad)
{
	mqlog_reader *r;
	mqlog_record rec;
	int rc;

	*bad = 0;
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	if (from == MQLOG_OFFSET_EARLIEST) {
		mqlog_partition_info info;
		ck_assert_int_eq(mqlog_partition_stat(t, 0, &info), 0);
		from = info.start_offset;
	}
	rc = mqlog_reader_seek(r, from);
	*next = from;
	while (rc == 0 && (rc = mqlog_reader_next(r, &rec)) == 1) {
		rc = 0;
		if (rec.offset != *next ||
		    bt_check_rec(SEED, 0, VMAX, &rec, why, cap)) {
			if (rec.offset != *next)
				snprintf(why, cap,
					 "offset %" PRIu64
					 " read where %" PRIu64 " was next",
					 rec.offset, *next);
			*bad = 1;
			break;
		}
		(*next)++;
	}
	mqlog_reader_close(r);
	return rc;
}

/* Totals for the report. */
static struct {
	unsigned long flips, header_flips, sealed, active, tool_runs;
	unsigned long active_cut, active_reported;
	unsigned long by_field[17];
	unsigned long garbage, lmdb_cases, lmdb_open_failed, lmdb_ok,
		lmdb_problems, lmdb_crashed;
} tot;

/* A field of the batch header by byte offset, for the report. */
static int field_of(uint64_t off)
{
	static const uint8_t starts[] = { 0,  4,  8,  16, 24, 32, 34,
					  36, 40, 48, 56, 64, 68 };
	for (int i = 11; i >= 0; i--)
		if (off >= starts[i])
			return i;
	return 0;
}

static const char *const field_names[] = {
	"magic",	   "length",	    "header_checksum", "base_offset",
	"body_checksum",   "flags",	    "reserved",	       "record_count",
	"first_timestamp", "max_timestamp", "producer_id",     "base_sequence",
	"records"
};

/*
 * Flip bit @bit of byte @pos of segment @s, recover, and check.  @why
 * describes a failure.
 */
static void flip_and_check(size_t s, uint64_t pos, unsigned bit, bool run_tool)
{
	const struct h_batch *hit = NULL;
	bool sealed = s + 1 < P.nseg;
	char why[512], what[256];
	mqlog *db;
	mqlog_topic *t;
	uint64_t next;
	int rc, bad, tool_rc = -1;

	for (size_t i = 0; i < P.nb[s]; i++)
		if (pos >= P.b[s][i].pos && pos < P.b[s][i].pos + P.b[s][i].len)
			hit = &P.b[s][i];
	ck_assert_ptr_nonnull(hit);
	snprintf(
		what, sizeof what,
		"bit %u of byte %" PRIu64 " (batch at %" PRIu64
		", offset %" PRIu64 ", %s) of %s segment %" PRIu64,
		bit, pos, hit->pos, hit->base,
		field_names[pos - hit->pos < 68 ? field_of(pos - hit->pos) : 12],
		sealed ? "sealed" : "active", P.bases[s]);
	ck_assert_int_eq(fx_flip_bit(fx_path("%s/%s", P.dir, seg_file(s)->rel),
				     pos, bit),
			 0);
	tot.flips++;
	tot.by_field[pos - hit->pos < 68 ? field_of(pos - hit->pos) : 12]++;
	if (sealed)
		tot.sealed++;
	else
		tot.active++;

	/* The offline checker, before anything recovers: sealed damage is
	 * corruption (3); a torn active tail is what a crash leaves (0). */
	if (run_tool) {
		tool_rc = tool_verify();
		tot.tool_runs++;
		ck_assert_msg(tool_rc == 3 || (!sealed && tool_rc == 0),
			      "%s: mqlog-tool verify exited %d: %s", what,
			      tool_rc, tool_err);
	}

	db = h_open(P.dir);
	t = h_topic(db, "t");
	mqlog_partition_info info = h_info(t, 0);
	rc = read_checked(t, MQLOG_OFFSET_EARLIEST, &next, why, sizeof why,
			  &bad);
	ck_assert_msg(!bad, "%s: a wrong record was returned: %s", what, why);
	if (!sealed && info.end_offset != P.end) {
		/* A torn tail: the exact valid prefix, cut at the damaged
		 * batch. */
		ck_assert_msg(info.end_offset == hit->base && rc == 0 &&
				      next == hit->base,
			      "%s: recovered end %" PRIu64 ", read to %" PRIu64
			      " (%s)",
			      what, info.end_offset, next, mqlog_errname(rc));
		ck_assert_uint_eq(
			h_size(fx_path("%s/%s", P.dir, seg_file(s)->rel)),
			hit->pos);
		ck_assert_msg(bt_verify(db, NULL, why, sizeof why) == 0,
			      "%s: %s", what, why);
		tot.active_cut++;
	} else if (!sealed) {
		/* Damage before the last index entry, which only durable
		 * batches get: synced data went bad, so it is left in place
		 * and reported, as in a sealed segment. */
		struct bt_problems p = { 0, "" };
		ck_assert_msg(rc == MQLOG_ECORRUPT && next == hit->base,
			      "%s: reading from the start gave %s at %" PRIu64,
			      what, mqlog_errname(rc), next);
		rc = mqlog_verify(db, NULL, bt_on_problem, &p, NULL);
		ck_assert_msg(rc == MQLOG_ECORRUPT && p.n > 0,
			      "%s: verify gave %s", what, mqlog_errname(rc));
		ck_assert_uint_eq(
			h_size(fx_path("%s/%s", P.dir, seg_file(s)->rel)),
			seg_file(s)->len);
		tot.active_reported++;
	} else {
		struct bt_problems p = { 0, "" };
		ck_assert_msg(info.end_offset == P.end, "%s: end %" PRIu64,
			      what, info.end_offset);
		ck_assert_msg(rc == MQLOG_ECORRUPT && next == hit->base,
			      "%s: reading from the start gave %s at %" PRIu64,
			      what, mqlog_errname(rc), next);
		/* The next segment and everything after it are readable. */
		rc = read_checked(t, P.bases[s + 1], &next, why, sizeof why,
				  &bad);
		ck_assert_msg(
			!bad && rc == 0 && next == P.end,
			"%s: reading from the next segment: %s at %" PRIu64
			" %s",
			what, mqlog_errname(rc), next, bad ? why : "");
		rc = mqlog_verify(db, NULL, bt_on_problem, &p, NULL);
		ck_assert_msg(rc == MQLOG_ECORRUPT && p.n > 0 &&
				      strstr(p.first, seg_file(s)->rel + 11),
			      "%s: verify gave %s (%u problems: %s)", what,
			      mqlog_errname(rc), p.n, p.first);
		/* Nothing was truncated. */
		for (size_t k = 0; k < P.nseg; k++)
			ck_assert_uint_eq(h_size(fx_path("%s/%s", P.dir,
							 seg_file(k)->rel)),
					  seg_file(k)->len);
	}
	/* Seeks anywhere: the exact record, or an error; never another. */
	for (int k = 0; k < 3; k++) {
		uint64_t o = bt_mix(tot.flips * 3 + (uint64_t)k) %
			     (info.end_offset ? info.end_offset : 1);
		if (o >= info.end_offset)
			break;
		rc = read_checked(t, o, &next, why, sizeof why, &bad);
		ck_assert_msg(!bad, "%s: seek to %" PRIu64 ": %s", what, o,
			      why);
	}
	mqlog_topic_close(t);
	mqlog_close(db);
	restore();
}

/* ======================================================================== */
/* Bit flips                                                                */
/* ======================================================================== */

START_TEST(test_bit_flips)
{
	uint64_t rng = 0xC0FFEE;
	unsigned long n = bt_env_ul("MQLOG_FLIPS", BT_SANITIZED ? 2000 : 10000);
	uint64_t total = 0;

	build_pristine();
	for (size_t s = 0; s < P.nseg; s++)
		total += seg_file(s)->len;
	for (unsigned long i = 0; i < n; i++) {
		size_t s;
		uint64_t pos;
		unsigned bit = (unsigned)(h_rand(&rng) % 8);
		if (i % 4 == 0) {
			/* Aimed at a header: a random batch, a random byte of
			 * its 68. */
			s = (size_t)(h_rand(&rng) % P.nseg);
			const struct h_batch *b =
				&P.b[s][h_rand(&rng) % P.nb[s]];
			pos = b->pos + h_rand(&rng) % 68;
			tot.header_flips++;
		} else {
			/* Anywhere, weighted by size. */
			uint64_t x = h_rand(&rng) % total;
			for (s = 0; x >= seg_file(s)->len; s++)
				x -= seg_file(s)->len;
			pos = x;
		}
		flip_and_check(s, pos, bit, i % 50 == 0);
	}
	printf("corruption: %lu bit flips (%lu aimed at headers; %lu in sealed "
	       "segments, reported; %lu in the active one: %lu cut as a torn "
	       "tail, %lu before the last index entry, reported; mqlog-tool "
	       "verify run %lu times); by field:",
	       tot.flips, tot.header_flips, tot.sealed, tot.active,
	       tot.active_cut, tot.active_reported, tot.tool_runs);
	for (int f = 0; f <= 12; f++)
		printf(" %s %lu", field_names[f], tot.by_field[f]);
	printf("\n");
	free_pristine();
}
END_TEST

/* ======================================================================== */
/* Garbage                                                                  */
/* ======================================================================== */

/* Garbage in and around the log: bytes after a sealed segment are sealed
 * damage (reported, nothing dropped); a stray segment file after the last
 * one with garbage in it is an empty active segment after recovery; a
 * file with another name is ignored; zeros after the active segment are
 * trimmed. */
START_TEST(test_garbage)
{
	uint8_t junk[1000];
	uint64_t rng = 99, next;
	char why[512], path[4300];
	mqlog *db;
	mqlog_topic *t;
	int rc, bad;

	build_pristine();
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)h_rand(&rng);

	/* After a sealed segment. */
	for (size_t s = 0; s + 1 < P.nseg; s++) {
		struct bt_problems p = { 0, "" };
		ck_assert_int_eq(fx_append_bytes(fx_path("%s/%s", P.dir,
							 seg_file(s)->rel),
						 junk, 1 + s * 97),
				 0);
		db = h_open(P.dir);
		t = h_topic(db, "t");
		ck_assert_uint_eq(h_info(t, 0).end_offset, P.end);
		rc = read_checked(t, MQLOG_OFFSET_EARLIEST, &next, why,
				  sizeof why, &bad);
		ck_assert(!bad);
		ck_assert_int_eq(rc, MQLOG_ECORRUPT);
		ck_assert_uint_eq(next, P.bases[s + 1]);
		ck_assert_int_eq(mqlog_verify(db, NULL, bt_on_problem, &p,
					      NULL),
				 MQLOG_ECORRUPT);
		mqlog_topic_close(t);
		mqlog_close(db);
		if (P.tool)
			ck_assert_int_eq(tool_verify(), 3);
		restore();
		tot.garbage++;
	}

	/* A stray segment after the last, full of garbage. */
	snprintf(path, sizeof path, "%s/topics/t/0/%020" PRIu64 ".seg", P.dir,
		 P.end);
	put_file(path, junk, sizeof junk);
	db = h_open(P.dir);
	t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 0).end_offset, P.end);
	rc = read_checked(t, MQLOG_OFFSET_EARLIEST, &next, why, sizeof why,
			  &bad);
	ck_assert(!bad && rc == 0 && next == P.end);
	ck_assert_int_eq(bt_verify(db, NULL, why, sizeof why), 0);
	ck_assert_uint_eq(h_size(path), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
	unlink(path);
	restore();
	tot.garbage++;

	/* Other files in the partition directory; zeros after the tail. */
	snprintf(path, sizeof path, "%s/topics/t/0/notes.txt", P.dir);
	put_file(path, junk, 100);
	memset(junk, 0, sizeof junk);
	ck_assert_int_eq(fx_append_bytes(fx_path("%s/%s", P.dir,
						 seg_file(P.nseg - 1)->rel),
					 junk, sizeof junk),
			 0);
	db = h_open(P.dir);
	t = h_topic(db, "t");
	rc = read_checked(t, MQLOG_OFFSET_EARLIEST, &next, why, sizeof why,
			  &bad);
	ck_assert(!bad && rc == 0 && next == P.end);
	ck_assert_int_eq(bt_verify(db, NULL, why, sizeof why), 0);
	ck_assert_uint_eq(
		h_size(fx_path("%s/%s", P.dir, seg_file(P.nseg - 1)->rel)),
		seg_file(P.nseg - 1)->len);
	mqlog_topic_close(t);
	mqlog_close(db);
	ck_assert(h_exists(path));
	tot.garbage += 2;
	unlink(path);
	restore();

	/* Every segment file gone (the log start is where it was): the
	 * partition starts empty at its start, the stale index entries go
	 * with the files, and appends work. */
	for (size_t k = 0; k < P.nseg; k++)
		ck_assert_int_eq(
			unlink(fx_path("%s/%s", P.dir, seg_file(k)->rel)), 0);
	db = h_open(P.dir);
	t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 0).end_offset, 0);
	ck_assert_int_eq(
		bt_append(t, SEED, 0, 0, 2, VMAX, MQLOG_SYNC_DEFAULT, NULL), 0);
	rc = read_checked(t, MQLOG_OFFSET_EARLIEST, &next, why, sizeof why,
			  &bad);
	ck_assert(!bad && rc == 0 && next == 2);
	ck_assert_msg(bt_verify(db, NULL, why, sizeof why) == 0, "%s", why);
	mqlog_topic_close(t);
	mqlog_close(db);
	for (int k = 0; k < P.nf; k++)
		if (strstr(P.f[k].rel, ".seg"))
			unlink(fx_path("%s/%s", P.dir, P.f[k].rel));
	restore();
	tot.garbage++;
	printf("corruption: %lu garbage cases\n", tot.garbage);
	free_pristine();
}
END_TEST

/* ======================================================================== */
/* LMDB damage                                                              */
/* ======================================================================== */

enum lmdb_outcome {
	L_OPEN_FAILED = 1,
	L_OK = 2,
	L_PROBLEMS = 3
};

/*
 * In a child: open the damaged directory and read everything.  Exits with
 * L_OPEN_FAILED (the open or the topic open failed with an error code),
 * L_OK (everything read exactly, verify clean, or clean after
 * mqlog_recover), L_PROBLEMS (recover could not make verify clean, but no
 * wrong record was returned), or 10 + reason for a broken promise.
 */
static int lmdb_child(void)
{
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	uint64_t next;
	char why[512];
	int rc, bad;

	rc = mqlog_open(P.dir, NULL, &db);
	if (rc) {
		if (mqlog_errmsg(NULL)[0] == '\0')
			return 10;
		return L_OPEN_FAILED;
	}
	rc = mqlog_topic_open(db, "t", &t);
	if (rc) {
		mqlog_close(db);
		return L_OPEN_FAILED;
	}
	rc = read_checked(t, MQLOG_OFFSET_EARLIEST, &next, why, sizeof why,
			  &bad);
	if (bad) {
		fprintf(stderr, "garbled LMDB: wrong record: %s\n", why);
		return 11;
	}
	for (uint64_t o = 0; o < P.end; o += 37) {
		rc = read_checked(t, o, &next, why, sizeof why, &bad);
		if (bad) {
			fprintf(stderr, "garbled LMDB: seek %" PRIu64 ": %s\n",
				o, why);
			return 12;
		}
	}
	mqlog_topic_close(t);
	int out = L_OK;
	if (mqlog_verify(db, NULL, NULL, NULL, NULL) != 0 &&
	    mqlog_recover(db, NULL, NULL) != 0)
		out = L_PROBLEMS;
	mqlog_close(db);
	return out;
}

static void lmdb_case(const char *what)
{
	pid_t pid;
	int status = 0;

	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(lmdb_child());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	tot.lmdb_cases++;
	if (WIFSIGNALED(status)) {
		tot.lmdb_crashed++;
		printf("corruption: %s: the open crashed with signal %d\n",
		       what, WTERMSIG(status));
	} else {
		int ex = WEXITSTATUS(status);
		ck_assert_msg(ex >= 1 && ex <= 3, "%s: child exited %d", what,
			      ex);
		if (ex == L_OPEN_FAILED)
			tot.lmdb_open_failed++;
		else if (ex == L_OK)
			tot.lmdb_ok++;
		else
			tot.lmdb_problems++;
	}
	restore();
}

/* meta/ deleted, data.mdb deleted, truncated or garbled: the open fails
 * cleanly or succeeds, nothing crashes, and no wrong record is ever
 * returned. */
START_TEST(test_lmdb_damage)
{
	struct pfile *mdb = NULL;
	char path[4300];
	uint64_t rng = 1234;
	unsigned long garbles =
		bt_env_ul("MQLOG_LMDB_GARBLES", BT_SANITIZED ? 60 : 300);

	build_pristine();
	for (int i = 0; i < P.nf; i++)
		if (!strcmp(P.f[i].rel, "meta/data.mdb"))
			mdb = &P.f[i];
	ck_assert_ptr_nonnull(mdb);
	snprintf(path, sizeof path, "%s/meta/data.mdb", P.dir);

	/* Deleted: adopted from topic.conf, index rebuilt. */
	fx_rmtree(fx_path("%s/meta", P.dir));
	lmdb_case("meta/ deleted");
	ck_assert_uint_eq(tot.lmdb_ok, 1);
	ck_assert_int_eq(unlink(path), 0);
	lmdb_case("data.mdb deleted");
	ck_assert_uint_eq(tot.lmdb_ok, 2);

	/* Truncated to nothing, to one page, to half. */
	size_t cuts[] = { 0, 100, 4096, 8192, mdb->len / 2, mdb->len - 4096 };
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		char what[64];
		ck_assert_int_eq(fx_truncate(path, cuts[i]), 0);
		snprintf(what, sizeof what, "data.mdb cut to %zu bytes",
			 cuts[i]);
		lmdb_case(what);
	}

	/* Garbled: runs of random bytes at random places, whole pages of
	 * garbage, single bit flips. */
	for (unsigned long g = 0; g < garbles; g++) {
		uint8_t junk[4096];
		char what[128];
		size_t len, at;
		int fd = open(path, O_RDWR);
		ck_assert_int_ge(fd, 0);
		switch (g % 3) {
		case 0:
			len = 1 + h_rand(&rng) % 16;
			break;
		case 1:
			len = 4096;
			break;
		default:
			len = 1;
			break;
		}
		at = (size_t)(h_rand(&rng) % (mdb->len - len));
		if (len == 4096)
			at -= at % 4096;
		ck_assert_int_eq(pread(fd, junk, len, (off_t)at), (ssize_t)len);
		for (size_t k = 0; k < len; k++)
			junk[k] =
				len == 1 ?
					(uint8_t)(junk[k] ^
						  (1u << (h_rand(&rng) % 8))) :
					(uint8_t)h_rand(&rng);
		ck_assert_int_eq(pwrite(fd, junk, len, (off_t)at),
				 (ssize_t)len);
		close(fd);
		snprintf(what, sizeof what,
			 "data.mdb garbled: %zu bytes at %zu", len, at);
		lmdb_case(what);
	}
	printf("corruption: LMDB damage: %lu cases: %lu opened and read back "
	       "exactly (verify clean, after recover where needed), %lu "
	       "failed to open with an error, %lu left problems recover could "
	       "not fix, %lu crashed\n",
	       tot.lmdb_cases, tot.lmdb_ok, tot.lmdb_open_failed,
	       tot.lmdb_problems, tot.lmdb_crashed);
	ck_assert_msg(tot.lmdb_crashed == 0,
		      "%lu of %lu opens of a damaged data.mdb crashed (listed "
		      "above)",
		      tot.lmdb_crashed, tot.lmdb_cases);
	free_pristine();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("corruption");
	TCase *tc = tcase_create("corruption");
	SRunner *sr;
	int nf;

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_bit_flips);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_lmdb_damage);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
