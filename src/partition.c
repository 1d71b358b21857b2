/*
 * partition.c - one partition: its shared state, recovery, appends, rolls,
 * group commit and the buffered derived index.
 *
 * Append protocol (any thread of any process):
 *
 *   1. encode the batch and hash its body, outside every lock;
 *   2. take the partition's robust append lock (in the shared state file);
 *   3. roll the segment when the batch would overflow it;
 *   4. assign the base offset, hash the 68 header bytes, pwrite the batch at
 *      the published end of the active segment;
 *   5. publish the new end (sequence lock) and wake waiting readers;
 *   6. release the lock; with sync ALWAYS, join the group commit.
 *
 * A process that dies anywhere in 2-5 leaves bytes past the published end;
 * the next locker sees EOWNERDEAD and re-runs recovery on the tail before it
 * goes on, so no partial batch is ever published.
 *
 * Group commit: sync_lock admits one syncer at a time.  It snapshots the
 * published end, fdatasyncs the active segment, and raises durable_offset to
 * the snapshot.  Callers that queued behind it find their offsets already
 * durable and return without a syscall.  Sealed segments are synced when
 * they are rolled, so one fdatasync of the active segment covers everything
 * published before it started.
 */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <unistd.h>

/* ======================================================================== */
/* Helpers                                                                  */
/* ======================================================================== */

void partition_seg_path(const struct partition *p, uint64_t base,
			char out[MQ_PATH_MAX])
{
	char name[SEG_NAME_LEN + 1];

	segment_name(name, base);
	snprintf(out, MQ_PATH_MAX, "%s/%s", p->dir, name);
}

static struct index *pix(const struct partition *p)
{
	return p->t->db->ix;
}

static uint32_t ptid(const struct partition *p)
{
	return p->t->meta.id;
}

static const mqlog_topic_config *pcfg(const struct partition *p)
{
	return &p->t->meta.cfg;
}

/* Per-thread encode buffer, freed when the thread exits. */
static pthread_key_t encbuf_key;
static pthread_once_t encbuf_once = PTHREAD_ONCE_INIT;

struct encbuf {
	uint8_t *data; /* buffer */
	size_t cap;    /* its size */
};

static void encbuf_free(void *v)
{
	struct encbuf *b = v;
	if (b) {
		free(b->data);
		free(b);
	}
}

static void encbuf_make_key(void)
{
	(void)pthread_key_create(&encbuf_key, encbuf_free);
}

static uint8_t *encbuf_get(size_t size)
{
	struct encbuf *b;

	pthread_once(&encbuf_once, encbuf_make_key);
	b = pthread_getspecific(encbuf_key);
	if (!b) {
		b = calloc(1, sizeof *b);
		if (!b || pthread_setspecific(encbuf_key, b) != 0) {
			free(b);
			return NULL;
		}
	}
	if (b->cap < size) {
		size_t ncap = b->cap ? b->cap : 64 * 1024;
		while (ncap < size)
			ncap *= 2;
		uint8_t *nd = realloc(b->data, ncap);
		if (!nd)
			return NULL;
		b->data = nd;
		b->cap = ncap;
	}
	return b->data;
}

/* ======================================================================== */
/* Segment list (in-process view)                                           */
/* ======================================================================== */

/* Caller holds p->mu. */
static int refresh_segments_locked(struct partition *p)
{
	uint64_t *bases;
	size_t n;
	int rc = segment_list(p->dir, &bases, &n);

	if (rc)
		return rc;
	free(p->bases);
	p->bases = bases;
	p->nbases = n;
	return 0;
}

int partition_refresh_segments(struct partition *p)
{
	pthread_mutex_lock(&p->mu);
	int rc = refresh_segments_locked(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static bool have_base_locked(const struct partition *p, uint64_t base)
{
	return p->nbases > 0 && p->bases[p->nbases - 1] >= base;
}

static int add_base_locked(struct partition *p, uint64_t base)
{
	if (have_base_locked(p, base))
		return 0;
	uint64_t *nb = realloc(p->bases, (p->nbases + 1) * sizeof *nb);
	if (!nb)
		return mq_err(MQLOG_ENOMEM, "%s", p->dir);
	nb[p->nbases++] = base;
	p->bases = nb;
	return 0;
}

int partition_segment_for(struct partition *p, uint64_t offset,
			  uint64_t *seg_base)
{
	int rc = 0;
	struct pview v;

	state_read_view(p->st, &v);
	pthread_mutex_lock(&p->mu);
	if (!have_base_locked(p, v.seg_base))
		rc = refresh_segments_locked(p);
	if (!rc) {
		/* Binary search for the floor. */
		size_t lo = 0, hi = p->nbases;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (p->bases[mid] <= offset)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == 0)
			rc = mq_err(
				MQLOG_ERANGE,
				"%s: offset %llu is before the first segment",
				p->dir, (unsigned long long)offset);
		else
			*seg_base = p->bases[lo - 1];
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int partition_next_segment(struct partition *p, uint64_t base, uint64_t *next)
{
	int rc = MQLOG_ENOENT;

	for (int attempt = 0; attempt < 2 && rc == MQLOG_ENOENT; attempt++) {
		pthread_mutex_lock(&p->mu);
		if (attempt == 1) {
			int r = refresh_segments_locked(p);
			if (r) {
				pthread_mutex_unlock(&p->mu);
				return r;
			}
		}
		/* The first base above @base (bases are sorted): readers
		 * step through thousands of segments this way. */
		size_t lo = 0, hi = p->nbases;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (p->bases[mid] <= base)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < p->nbases) {
			*next = p->bases[lo];
			rc = 0;
		}
		pthread_mutex_unlock(&p->mu);
	}
	return rc;
}

/* ======================================================================== */
/* Derived index buffering                                                  */
/* ======================================================================== */

int partition_flush_index(struct partition *p)
{
	struct index_entry ie[PART_IBUF_MAX];
	struct time_entry te[PART_IBUF_MAX];
	struct seg_meta sm[4];
	size_t ni, ns;

	if (p->t->db->rdonly || p->st_private)
		return 0;
	pthread_mutex_lock(&p->mu);
	if (MQ_LOAD(&p->st->deleted)) {
		/* Writing would bring back keys of a deleted topic id. */
		p->nibuf = p->nsbuf = 0;
		pthread_mutex_unlock(&p->mu);
		return 0;
	}
	/*
	 * Only entries of batches that are durable go to the index: LMDB
	 * syncs its own commits, so an entry written for a batch whose pages
	 * had not reached the disk could outlive that batch in a power cut,
	 * and recovery, which starts its scan at the last entry, would then
	 * never see the hole before it.  The rest wait for the next sync
	 * (entries are in offset order; summaries are of sealed segments,
	 * which were synced before they were sealed).
	 */
	uint64_t durable = MQ_LOAD(&p->st->durable_offset);
	for (ni = 0; ni < p->nibuf && p->ibuf[ni].offset < durable; ni++)
		;
	ns = p->nsbuf;
	memcpy(ie, p->ibuf, ni * sizeof ie[0]);
	memcpy(te, p->tbuf, ni * sizeof te[0]);
	memcpy(sm, p->sbuf, ns * sizeof sm[0]);
	memmove(p->ibuf, p->ibuf + ni, (p->nibuf - ni) * sizeof p->ibuf[0]);
	memmove(p->tbuf, p->tbuf + ni, (p->nibuf - ni) * sizeof p->tbuf[0]);
	p->nibuf -= ni;
	p->nsbuf = 0;
	pthread_mutex_unlock(&p->mu);
	if (p->truncate_pending) {
		int r = index_truncate(pix(p), ptid(p), p->id,
				       p->truncate_from);
		if (r) {
			/* Never add entries next to stale ones. */
			pthread_mutex_lock(&p->mu);
			p->nibuf = p->nsbuf = 0;
			pthread_mutex_unlock(&p->mu);
			return mq_err_wrap(r, "%s: index truncate", p->dir);
		}
		p->truncate_pending = false;
	}
	if (ni == 0 && ns == 0)
		return 0;
	/* Derived data: a failed write only costs lookups a longer scan, and
	 * recovery rebuilds what is missing.  Report it all the same. */
	MQ_CRASH_POINT("index.before_flush");
	int rc = index_write(pix(p), ptid(p), p->id, ie, ni, te, ni, sm, ns);
	if (rc)
		mq_err_wrap(rc, "%s: index flush", p->dir);
	return rc;
}

/* Buffer one entry; caller holds the append lock.  Returns true when the
 * buffer is full and should be flushed after the lock is released. */
static bool buffer_entry(struct partition *p, uint64_t offset, uint64_t seg,
			 uint64_t pos, int64_t ts_before)
{
	bool full;

	pthread_mutex_lock(&p->mu);
	if (p->nibuf == PART_IBUF_MAX) {
		/* Flushes keep failing, or nothing was synced for a while
		 * (entries wait for their batch to be durable): keep every
		 * other entry rather than block appends on derived data, so
		 * that the index stays sparse but covers the whole range. */
		for (size_t i = 1; i < PART_IBUF_MAX / 2; i++) {
			p->ibuf[i] = p->ibuf[2 * i];
			p->tbuf[i] = p->tbuf[2 * i];
		}
		p->nibuf = PART_IBUF_MAX / 2;
	}
	p->ibuf[p->nibuf] = (struct index_entry){ offset, seg, pos };
	p->tbuf[p->nibuf] = (struct time_entry){ ts_before, offset, seg, pos };
	p->nibuf++;
	full = p->nibuf >= PART_IBUF_MAX / 2;
	pthread_mutex_unlock(&p->mu);
	return full;
}

/* ======================================================================== */
/* Recovery                                                                 */
/* ======================================================================== */

/* Index entries produced by a scan, written in chunks. */
struct rebuild_ctx {
	struct partition *p; /* partition being indexed */
	uint64_t seg;	     /* segment being scanned */
	uint64_t interval;   /* index interval bytes */
	uint64_t last_pos;   /* position of the last entry in seg */
	bool have_last;	     /* an entry exists in seg */
	int64_t running_max; /* max timestamp before the current batch */
	bool write;	     /* write entries to LMDB */
	bool buffer;	     /* instead keep them until they are durable */
	struct index_entry ie[256]; /* pending entries */
	struct time_entry te[256];
	size_t n;	  /* pending count */
	uint64_t written; /* entries written in all */
	int rc;		  /* first index write error */
};

static void rebuild_flush(struct rebuild_ctx *c)
{
	if (c->n && c->write) {
		int rc = index_write(pix(c->p), ptid(c->p), c->p->id, c->ie,
				     c->n, c->te, c->n, NULL, 0);
		if (rc) {
			/* Derived data: a full disk or a full map must not
			 * keep acknowledged records from being read.  Stop
			 * writing; lookups scan instead. */
			if (!c->rc)
				c->rc = rc;
			c->write = false;
		} else {
			c->written += c->n;
		}
	}
	c->n = 0;
}

static int rebuild_batch(void *arg, uint64_t pos, const uint8_t *batch,
			 const struct batch_hdr *h)
{
	struct rebuild_ctx *c = arg;

	MQ_UNUSED(batch);
	if (c->buffer && (!c->have_last || pos - c->last_pos >= c->interval)) {
		(void)buffer_entry(c->p, h->base_offset, c->seg, pos,
				   c->running_max);
		c->last_pos = pos;
		c->have_last = true;
	} else if (!c->have_last || pos - c->last_pos >= c->interval) {
		c->ie[c->n] =
			(struct index_entry){ h->base_offset, c->seg, pos };
		c->te[c->n] = (struct time_entry){ c->running_max,
						   h->base_offset, c->seg,
						   pos };
		if (++c->n == 256)
			rebuild_flush(c);
		c->last_pos = pos;
		c->have_last = true;
	}
	if (h->max_timestamp > c->running_max)
		c->running_max = h->max_timestamp;
	return 0;
}

/*
 * Store a recovered position.  Other processes may be reading the state
 * (repair after a dead owner), so the published fields change inside the
 * sequence lock; the rest are only read under the append lock.
 */
static void set_state(struct pstate *st, uint64_t seg_base, uint64_t seg_end,
		      uint64_t end, uint64_t start, uint64_t durable,
		      int64_t max_ts, int64_t seg_max_ts, uint64_t last_index,
		      uint64_t total_bytes)
{
	MQ_STORE_RELAXED(&st->total_bytes, total_bytes);
	state_publish_begin(st);
	MQ_STORE_RELAXED(&st->seg_base, seg_base);
	MQ_STORE_RELAXED(&st->seg_end_pos, seg_end);
	MQ_STORE_RELAXED(&st->end_offset, end);
	MQ_STORE_RELAXED(&st->start_offset, start);
	state_publish_end(st);
	if (MQ_LOAD(&st->durable_offset) < durable ||
	    MQ_LOAD(&st->durable_offset) > end)
		MQ_STORE(&st->durable_offset, durable < end ? durable : end);
	st->max_ts = max_ts;
	st->seg_max_ts = seg_max_ts;
	st->last_index_pos = last_index;
}

/* Outcome of recovering one partition. */
struct recover_out {
	uint64_t truncated; /* bytes cut from the tail */
	uint64_t entries;   /* index entries written */
};

/*
 * Index a sealed segment fully (when its summary is missing from LMDB) and
 * record its summary.  Corruption inside it is not repaired here: indexing
 * stops at the damage and readers report it when they get there.
 */
static int index_sealed(struct partition *p, uint64_t base, uint64_t next_base,
			struct rebuild_ctx *c)
{
	char path[MQ_PATH_MAX];
	struct segmap m;
	struct scan_result res;
	int rc;

	partition_seg_path(p, base, path);
	rc = segmap_open(&m, path, 0);
	if (rc)
		return rc;
	c->seg = base;
	c->have_last = false;
	segment_scan(m.base, 0, m.file_size, base, false, c->running_max,
		     rebuild_batch, c, &res);
	rebuild_flush(c);
	segmap_close(&m);
	if (res.stop_rc == 0 && res.next_offset == next_base && c->write) {
		struct seg_meta sm = { base, res.valid_end, res.next_offset,
				       res.seg_max_ts };
		/* Best effort, as every derived write during recovery. */
		if (index_write(pix(p), ptid(p), p->id, NULL, 0, NULL, 0, &sm,
				1) != 0)
			c->write = false;
	}
	return 0;
}

/*
 * Make the directory entries this partition's records depend on durable
 * before anything is acknowledged in it: its segments' names, the
 * partition's, the topic's.  Each was fsynced when it was made, but that
 * fsync may have failed (the call reported it) while the entry stayed, and
 * a later open that finds the entry cannot tell.  The topic's directories
 * are synced once per process; a partition's at every recovery.
 */
static int sync_dirs(struct partition *p)
{
	struct mqlog_topic *t = p->t;
	char topics[MQ_PATH_MAX];
	int rc;

	if (!__atomic_load_n(&t->dirs_synced, __ATOMIC_ACQUIRE)) {
		snprintf(topics, sizeof topics, "%s/topics", t->db->path);
		rc = io_fsync_dir(topics);
		if (rc)
			return mq_err(rc, "%s: fsync", topics);
		rc = io_fsync_dir(t->dir);
		if (rc)
			return mq_err(rc, "%s: fsync", t->dir);
		__atomic_store_n(&t->dirs_synced, 1, __ATOMIC_RELEASE);
	}
	rc = io_fsync_dir(p->dir);
	return rc ? mq_err(rc, "%s: fsync", p->dir) : 0;
}

/*
 * A scan is about to rewrite the derived entries of offsets >= @from:
 * delete the old ones first.  Time entries are keyed by (timestamp,
 * offset), and the running maximum a scan computes can differ from the one
 * the append path used (retention may have deleted the segments that held
 * the earlier maximum), so a rewrite would otherwise sit beside the entry
 * it replaces.  When the delete fails (a full disk), the scan writes no
 * entries and the next index flush deletes them first.
 */
static void drop_stale_entries(struct partition *p, struct rebuild_ctx *c,
			       uint64_t from, uint64_t *stale_from)
{
	if (!c->write)
		return;
	if (index_truncate(pix(p), ptid(p), p->id, from) != 0) {
		c->write = false;
		if (from < *stale_from)
			*stale_from = from;
	}
}

/*
 * Committed group offsets past the recovered end: LMDB syncs a group
 * commit on its own, so a power cut can keep a commit that counted records
 * of an unsynced log tail it then lost.  The next records appended get
 * those offsets; a member claiming the partition after that would resume
 * from the old commit and skip them.  So before anything is appended, such
 * offsets are set back to the end, durably, as a Kafka consumer resets an
 * out-of-range offset, and counted (mqlog_recover_stats.offsets_clamped).
 */
static int clamp_group_offsets(struct partition *p, uint64_t end)
{
	uint64_t n = 0;
	int rc = index_group_clamp(pix(p), ptid(p), p->id, end, &n);

	if (rc)
		return mq_err_wrap(rc,
				   "%s: group offsets past the end %" PRIu64,
				   p->dir, end);
	p->clamped_at_open += n;
	return 0;
}

/* The leading sealed segments that have a summary in the index. */
struct sealed_walk {
	const uint64_t *bases; /* the partition's segments, in order */
	size_t n;	       /* how many are sealed */
	size_t known;	       /* bases[0..known) have a summary */
	int64_t max_ts;	       /* the largest timestamp among those */
	uint64_t bytes;	       /* the sum of their sizes */
};

static int sealed_walk_fn(void *arg, const struct seg_meta *m)
{
	struct sealed_walk *w = arg;

	if (w->known == w->n)
		return 1;
	if (m->base < w->bases[w->known])
		return 0; /* of a file that is gone: trimmed later */
	if (m->base > w->bases[w->known])
		return 1; /* bases[known] has none */
	if (m->max_ts > w->max_ts)
		w->max_ts = m->max_ts;
	w->bytes += m->size;
	w->known++;
	return 0;
}

/* The size of segment @base: fstatat under the partition directory @dfd
 * when it is open (no path walk, no formatting of the whole path). */
static uint64_t sealed_size(const struct partition *p, int dfd, uint64_t base)
{
	char name[SEG_NAME_LEN + 1], path[MQ_PATH_MAX];
	struct stat sst;

	if (dfd >= 0) {
		segment_name(name, base);
		return fstatat(dfd, name, &sst, 0) == 0 ?
			       (uint64_t)sst.st_size :
			       0;
	}
	partition_seg_path(p, base, path);
	return stat(path, &sst) == 0 ? (uint64_t)sst.st_size : 0;
}

/*
 * Rebuild the partition's view of itself from its segment files: find the
 * active segment, scan its tail from the last trustworthy index entry,
 * truncate an invalid tail (when @modify), catch the index up, and fill the
 * state.  With @full the derived index is cleared and rebuilt from every
 * segment.  Caller holds the append lock or the state file's OFD lock, or
 * owns a private state.
 */
static int recover_locked(struct partition *p, bool modify, bool full,
			  struct recover_out *out)
{
	struct pstate *st = p->st;
	struct index_entry e;
	struct time_entry te;
	struct part_meta pm = { 0 };
	char path[MQ_PATH_MAX];
	struct segmap m = { .fd = -1 };
	struct scan_result res;
	struct rebuild_ctx *c = NULL;
	uint64_t start_pos = 0, start_off, last, log_start;
	uint64_t stale_from = UINT64_MAX; /* entries from here could not go */
	int64_t running = INT64_MIN;
	uint64_t *bases = NULL; /* a copy of p->bases */
	size_t nb = 0;
	int rc, fd = -1;

	memset(out, 0, sizeof *out);
	rc = index_part_get(pix(p), ptid(p), p->id, &pm);
	if (rc && rc != MQLOG_ENOENT)
		return rc;
	log_start = rc == MQLOG_ENOENT ? 0 : pm.log_start;

	pthread_mutex_lock(&p->mu);
	rc = refresh_segments_locked(p);
	pthread_mutex_unlock(&p->mu);
	if (rc)
		return rc;

	if (modify) {
		rc = sync_dirs(p);
		if (rc)
			return rc;
	}

	if (p->nbases == 0) {
		/* A new partition (or one whose files were all removed):
		 * start an empty segment at the log start. */
		if (modify) {
			partition_seg_path(p, log_start, path);
			fd = io_open(path, O_RDWR | O_CREAT, 0644);
			if (fd < 0)
				return mq_err(fd, "%s: create", path);
			io_close(fd);
			fd = -1;
			rc = io_fsync_dir(p->dir);
			if (rc)
				return mq_err(rc, "%s: fsync", p->dir);
			pthread_mutex_lock(&p->mu);
			rc = add_base_locked(p, log_start);
			pthread_mutex_unlock(&p->mu);
			if (rc)
				return rc;
			/* Entries of files that are gone would point the new
			 * offsets at nothing.  Derived: when they cannot go
			 * now, the next flush removes them first. */
			if (index_clear(pix(p), ptid(p), p->id) != 0) {
				p->truncate_pending = true;
				p->truncate_from = 0;
			}
		}
		set_state(st, log_start, 0, log_start, log_start, log_start,
			  INT64_MIN, INT64_MIN, 0, 0);
		return modify ? clamp_group_offsets(p, log_start) : 0;
	}

	c = calloc(1, sizeof *c);
	if (!c)
		return mq_err(MQLOG_ENOMEM, "%s", p->dir);
	/* Our own copy of the list: a reader thread of this process may
	 * list the files again (and free the array) while we work. */
	pthread_mutex_lock(&p->mu);
	nb = p->nbases;
	bases = nb ? malloc(nb * sizeof *bases) : NULL;
	if (bases)
		memcpy(bases, p->bases, nb * sizeof *bases);
	pthread_mutex_unlock(&p->mu);
	if (!bases) {
		free(c);
		return nb ? mq_err(MQLOG_ENOMEM, "%s", p->dir) :
			    mq_err(MQLOG_ENOENT, "%s: no segment file left",
				   p->dir);
	}
	c->p = p;
	c->interval = pcfg(p)->index_interval_bytes;
	c->write = modify;
	c->running_max = INT64_MIN;

	last = bases[nb - 1];
	start_off = last;

	if (full && modify) {
		rc = index_clear(pix(p), ptid(p), p->id);
		if (rc)
			goto out;
	}
	/* Sealed segments whose summary is missing get indexed, and every
	 * segment after the first of them; with @full that is all of them.
	 * The summaries are read in one walk: one lookup per segment costs
	 * more than the rest of opening a partition of thousands. */
	struct sealed_walk sw = { bases, nb - 1, 0, INT64_MIN, 0 };
	if (!full)
		(void)index_foreach_seg(pix(p), ptid(p), p->id, sealed_walk_fn,
					&sw); /* a bad summary: index from it */
	if (sw.max_ts > c->running_max)
		c->running_max = sw.max_ts;
	bool reindex = full;
	for (size_t i = full ? 0 : sw.known; i + 1 < nb; i++) {
		uint64_t b = bases[i];
		if (!reindex)
			drop_stale_entries(p, c, b, &stale_from);
		reindex = true;
		rc = index_sealed(p, b, bases[i + 1], c);
		if (rc)
			goto out;
	}
	running = c->running_max;

	partition_seg_path(p, last, path);
	rc = segmap_open(&m, path, 0);
	if (rc)
		goto out;
	if (modify) {
		/* What a dead process left in the page cache may not be on
		 * the disk yet.  Rather than wait here for it to get there
		 * (a second per GiB), the scan below keeps the entries of
		 * the active segment in the buffer, which the next sync
		 * writes once they are durable (the index must never lead
		 * durable data, see partition_flush_index), and
		 * durable_offset starts at the active segment: sealed
		 * segments were synced before they were sealed.  A full
		 * rebuild (mqlog_recover, or an index that disagrees with
		 * the log) is asked to leave a complete index: it syncs the
		 * segment and writes the entries. */
		fd = io_open(path, O_RDWR, 0);
		if (fd < 0) {
			rc = mq_err(fd, "%s", path);
			goto out;
		}
		if (full) {
			rc = io_fdatasync(fd);
			if (rc) {
				rc = mq_err(rc, "%s: fdatasync", path);
				goto out;
			}
		}
	}

	/* Start at the last index entry of the active segment when the log
	 * confirms it: a batch with that base offset at that position. */
	if (!full &&
	    index_floor_offset(pix(p), ptid(p), p->id, UINT64_MAX, &e) == 0 &&
	    e.seg_base == last && e.pos < m.file_size) {
		struct batch_hdr h;
		const char *why;
		if (batch_check_header(m.base + e.pos,
				       (size_t)(m.file_size - e.pos), &h,
				       &why) == 0 &&
		    h.base_offset == e.offset &&
		    index_floor_time(pix(p), ptid(p), p->id, INT64_MAX, &te) ==
			    0 &&
		    te.offset == e.offset) {
			start_pos = e.pos;
			start_off = e.offset;
			running = te.ts;
			/* Entries at and after it are rewritten by the scan. */
		} else if (modify) {
			/* The index disagrees with the log: it is derived,
			 * so throw it away and rebuild it whole. */
			if (fd >= 0)
				io_close(fd);
			segmap_close(&m);
			free(c);
			free(bases);
			return recover_locked(p, modify, true, out);
		}
	}

	if (!reindex)
		drop_stale_entries(p, c, start_off, &stale_from);
	c->seg = last;
	c->have_last = false;
	c->running_max = running;
	c->buffer = modify && c->write && !full;
	uint64_t check_from = 0;
	if (p->trust_valid && p->trust_base == last &&
	    p->trust_end >= start_pos && p->trust_end <= m.file_size)
		check_from = p->trust_end;
	p->trust_valid = false;
	segment_scan_from(m.base, start_pos, m.file_size, start_off, check_from,
			  running, rebuild_batch, c, &res);
	rebuild_flush(c);
	out->entries = c->written;

	if (res.valid_end < m.file_size && modify) {
		/* A torn or corrupt tail of the active segment: everything
		 * from the first invalid batch on was never acknowledged as
		 * durable (or is damaged), so cut it.  No sync here: should
		 * the cut not survive a power loss, the next recovery cuts
		 * the same bytes again, and the sync that acknowledges the
		 * next append makes the new size durable with it. */
		rc = io_ftruncate(fd, res.valid_end);
		if (rc) {
			rc = mq_err(rc, "%s: truncate torn tail at byte %llu",
				    path, (unsigned long long)res.valid_end);
			goto out;
		}
		out->truncated = m.file_size - res.valid_end;
		p->truncated_at_open += out->truncated;
	}
	if (modify) {
		/* Stale entries past the end would point new offsets at old
		 * bytes; when they cannot be removed now (full disk), the
		 * next index flush removes them first. */
		if (index_truncate(pix(p), ptid(p), p->id, res.next_offset) !=
		    0)
			p->truncate_pending = true;
		p->truncate_from = res.next_offset;
		if (stale_from < p->truncate_from) {
			p->truncate_pending = true;
			p->truncate_from = stale_from;
		}
	}

	uint64_t so = retention_recovered_start(p, log_start, bases[0],
						res.next_offset);
	int64_t segmax = res.seg_max_ts;
	if (start_pos != 0 && running > segmax)
		segmax = running; /* an upper bound is safe for retention */
	/* The bytes of the log.  Under a byte limit they decide deletions:
	 * ask the files.  Otherwise they are only reported, and the
	 * summaries say it without a system call per segment. */
	uint64_t total = res.valid_end;
	size_t from = 0;
	if (pcfg(p)->retention_bytes <= 0 && !full) {
		total += sw.bytes;
		from = sw.known;
	}
	if (from + 1 < nb) {
		int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		for (size_t i = from; i + 1 < nb; i++)
			total += sealed_size(p, dfd, bases[i]);
		if (dfd >= 0)
			close(dfd);
	}
	set_state(st, last, res.valid_end, res.next_offset, so,
		  modify ? (full ? res.next_offset : last) : 0, res.max_ts,
		  segmax, c->have_last ? c->last_pos : start_pos, total);
	/* Segments wholly below the start: a retention deletion that died
	 * between persisting the start and unlinking the files. */
	if (modify)
		rc = retention_delete_below(p, so);
	else
		rc = 0;
	if (modify && rc == 0)
		rc = clamp_group_offsets(p, res.next_offset);
	if (modify && rc == 0) {
		/* Derived entries below the first segment: a deletion that
		 * died after unlinking files but before trimming the index
		 * leaves them, and no later deletion finds those files to
		 * trim for.  Best effort, as all derived writes here; an
		 * empty range commits nothing. */
		pthread_mutex_lock(&p->mu);
		uint64_t first = p->nbases ? p->bases[0] : so;
		pthread_mutex_unlock(&p->mu);
		(void)index_trim(pix(p), ptid(p), p->id, first);
	}
out:
	if (fd >= 0)
		io_close(fd);
	segmap_close(&m);
	free(c);
	free(bases);
	if (rc)
		mq_err_wrap(rc, "recover %s", p->dir);
	return rc;
}

/* ======================================================================== */
/* Append lock                                                              */
/* ======================================================================== */

/*
 * Before a recovery of state @st left by processes that are gone: when it
 * was published in this boot and nobody closed the partition since, every
 * batch below the published end was written whole by a write(2) that
 * returned, and the page cache still holds it (no power was lost: same
 * boot).  Only what lies beyond can be torn, so the recovery scan checks
 * body checksums from there on and just walks the headers before it: a
 * log of a GiB that a killed process left then recovers in milliseconds
 * rather than in the second that hashing and faulting it all in takes.
 * Readers verify every batch anyway.
 */
static void take_trust(struct partition *p, const struct pstate *st)
{
	uint8_t boot[16];

	p->trust_valid = MQ_LOAD(&st->magic) == PSTATE_MAGIC &&
			 st->version == PSTATE_VERSION &&
			 MQ_LOAD(&st->tail_trusted) == 1 &&
			 (MQ_LOAD(&st->seq) & 1) == 0 && state_boot_id(boot) &&
			 memcmp(boot, st->boot_id, sizeof boot) == 0;
	p->trust_base = st->seg_base;
	p->trust_end = st->seg_end_pos;
}

static void close_active(struct partition *p)
{
	if (p->active_fd >= 0)
		io_close(p->active_fd);
	p->active_fd = -1;
}

/*
 * Take the append lock.  When its previous owner died inside an append,
 * repair the tail from the log before anyone goes on.
 */
static int lock_append(struct partition *p)
{
	int rc = pthread_mutex_lock(&p->st->append_lock);

	if (MQ_LIKELY(rc == 0))
		return 0;
	if (rc == EOWNERDEAD) {
		struct recover_out ro;
		/* This process's fds may point at files the dead owner
		 * created or truncated: reopen them after the repair. */
		close_active(p);
		take_trust(p, p->st);
		int r = recover_locked(p, true, false, &ro);
		if (r)
			MQ_STORE(&p->st->failed, 1u);
		state_wake(p->st);
		pthread_mutex_consistent(&p->st->append_lock);
		return 0;
	}
	return mq_err(-rc, "%s: append lock", p->dir);
}

static void unlock_append(struct partition *p)
{
	pthread_mutex_unlock(&p->st->append_lock);
}

int partition_lock(struct partition *p)
{
	return lock_append(p);
}

void partition_unlock(struct partition *p)
{
	unlock_append(p);
}

/* Move the log start (never down); append lock held.  Wakes producers
 * waiting for space and readers (who may now be out of range). */
void partition_publish_start(struct partition *p, uint64_t start)
{
	struct pstate *st = p->st;

	if (start <= st->start_offset)
		return;
	state_publish_begin(st);
	MQ_STORE_RELAXED(&st->start_offset, start);
	state_publish_end(st);
	state_wake_word(&st->space, &st->space_waiters);
}

/* Make p->active_fd the active segment of the shared state; append lock held.
 */
static int ensure_active(struct partition *p)
{
	char path[MQ_PATH_MAX];
	uint64_t base = p->st->seg_base;
	int fd;

	if (p->active_fd >= 0 && p->active_base == base)
		return 0;
	close_active(p);
	partition_seg_path(p, base, path);
	fd = io_open(path, O_RDWR, 0);
	if (fd < 0)
		return mq_err(fd, "%s", path);
	p->active_fd = fd;
	p->active_base = base;
	/* Another process rolled, perhaps more than once: list the files
	 * again rather than append @base after a gap (a reader would take
	 * the gap for a hole in the log, retention for deletable files). */
	pthread_mutex_lock(&p->mu);
	int rc = have_base_locked(p, base) ? 0 : refresh_segments_locked(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static void fail_stop(struct partition *p)
{
	MQ_STORE(&p->st->failed, 1u);
}

/*
 * Reserve the next window of the active segment.  Best effort: without the
 * reservation the write still allocates its own blocks, and a full disk is
 * reported by the write itself.
 */
static void preallocate(struct partition *p, uint64_t pos, size_t size)
{
	uint64_t seg_bytes = pcfg(p)->segment_bytes;
	uint64_t end = pos + size + PREALLOC_WINDOW;

	if (end > seg_bytes)
		end = pos + size > seg_bytes ? pos + size : seg_bytes;
	if (io_preallocate(p->active_fd, pos, end - pos) != 0)
		end = pos; /* try again next time */
	p->prealloc_base = p->active_base;
	p->prealloc_end = end;
}

/*
 * Roll to a new segment at the current end.  Append lock held.  The old
 * segment is synced first so that a sealed segment is always durable
 * whole, and the new file's directory entry is synced before any record
 * goes into it.
 */
static int roll(struct partition *p)
{
	struct pstate *st = p->st;
	char path[MQ_PATH_MAX];
	uint64_t nb = st->end_offset;
	int rc, fd;

	/* Give back blocks reserved past the end of the sealed segment. */
	(void)io_ftruncate(p->active_fd, st->seg_end_pos);
	rc = io_fdatasync(p->active_fd);
	if (rc) {
		fail_stop(p);
		partition_seg_path(p, p->active_base, path);
		return mq_err(rc, "%s: fdatasync before roll", path);
	}
	partition_seg_path(p, nb, path);
	/* A file with this name can only be left by a roll that died before
	 * publishing it: it holds nothing acknowledged. */
	fd = io_open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return mq_err(fd, "%s: create segment", path);
	rc = io_fsync_dir(p->dir);
	if (rc) {
		io_close(fd);
		fail_stop(p);
		return mq_err(rc, "%s: fsync directory", p->dir);
	}
	MQ_CRASH_POINT("roll.after_create");
	pthread_mutex_lock(&p->mu);
	if (p->nsbuf < 4)
		p->sbuf[p->nsbuf++] =
			(struct seg_meta){ p->active_base, st->seg_end_pos,
					   st->end_offset, st->seg_max_ts };
	rc = add_base_locked(p, nb);
	pthread_mutex_unlock(&p->mu);
	if (rc) {
		io_close(fd);
		return rc;
	}
	close_active(p);
	p->active_fd = fd;
	p->active_base = nb;

	state_publish_begin(st);
	MQ_STORE_RELAXED(&st->seg_base, nb);
	MQ_STORE_RELAXED(&st->seg_end_pos, 0);
	state_publish_end(st);
	MQ_CRASH_POINT("roll.after_publish");
	/* Everything before the new segment was synced above. */
	if (MQ_LOAD(&st->durable_offset) < nb)
		MQ_STORE(&st->durable_offset, nb);
	st->seg_max_ts = INT64_MIN;
	st->last_index_pos = 0;
	return 0;
}

/* ======================================================================== */
/* Sync (group commit)                                                      */
/* ======================================================================== */

static int sync_to(struct partition *p, uint64_t target)
{
	struct pstate *st = p->st;
	struct pview v;
	char path[MQ_PATH_MAX];
	int rc, fd;

	if (MQ_LOAD(&st->durable_offset) >= target)
		return 0;
	rc = pthread_mutex_lock(&st->sync_lock);
	if (rc == EOWNERDEAD) {
		/* The dead syncer left nothing half-done: durable_offset
		 * only ever moves after a completed fdatasync. */
		pthread_mutex_consistent(&st->sync_lock);
	} else if (rc) {
		return mq_err(-rc, "%s: sync lock", p->dir);
	}
	if (MQ_LOAD(&st->durable_offset) >= target) {
		pthread_mutex_unlock(&st->sync_lock);
		return 0;
	}
	if (MQ_LOAD(&st->failed)) {
		pthread_mutex_unlock(&st->sync_lock);
		return mq_err(MQLOG_EFAILED, "%s", p->dir);
	}
	state_read_view(st, &v);
	partition_seg_path(p, v.seg_base, path);
	/* Our own descriptor: the active one may be closed by a roll in
	 * another thread while we sleep in fdatasync. */
	fd = io_open(path, O_RDONLY, 0);
	if (fd < 0) {
		pthread_mutex_unlock(&st->sync_lock);
		return mq_err(fd, "%s", path);
	}
	MQ_CRASH_POINT("sync.before");
	rc = io_fdatasync(fd);
	io_close(fd);
	MQ_CRASH_POINT("sync.after");
	if (rc) {
		fail_stop(p);
		pthread_mutex_unlock(&st->sync_lock);
		return mq_err(rc,
			      "%s: fdatasync (partition is now fail-stopped)",
			      path);
	}
	if (MQ_LOAD(&st->durable_offset) < v.end_offset)
		MQ_STORE(&st->durable_offset, v.end_offset);
	pthread_mutex_unlock(&st->sync_lock);
	pthread_mutex_lock(&p->mu);
	p->last_sync_ms = mq_now_ms();
	p->dirty = MQ_LOAD(&st->end_offset) > v.end_offset;
	pthread_mutex_unlock(&p->mu);
	if (v.end_offset < target)
		return sync_to(p, target);
	return 0;
}

/*
 * Start writing back what was appended since the last call (flusher
 * thread, every tick, for partitions that are not synced on every append).
 * The roll that seals a segment syncs it under the append lock; with the
 * pages already on their way, that sync waits for a tick's worth of data
 * instead of the whole segment (half a second per GiB on this kind of
 * disk), and the disk works while the producers do instead of after them.
 * The page being filled is left alone: a write into a page under writeback
 * can wait for it.  Only this thread touches wb_*.
 *
 * Only what was appended at least WB_DELAY_MS ago is written back (the
 * kernel does the same after 30 s), so a burst that ends within the delay
 * does not pay for writeback while it runs; samples of the published end,
 * one a tick, say where the log was that long ago.  Unless more than half
 * a segment is waiting: then all of it goes, so that a roll never waits
 * for more than half a segment whatever the rate.
 */
void partition_writeback(struct partition *p, int64_t now_ms)
{
	struct pview v;
	char path[MQ_PATH_MAX];
	uint64_t upto = 0;

	if (p->st_private || p->t->db->rdonly)
		return;
	state_read_view(p->st, &v);
	p->wb_hist[p->wb_head] =
		(struct wb_sample){ v.seg_base, v.seg_end_pos, now_ms };
	p->wb_head = (p->wb_head + 1) % WB_SAMPLES;
	for (unsigned i = 0; i < WB_SAMPLES; i++) {
		const struct wb_sample *s = &p->wb_hist[i];
		if (s->ms && s->ms <= now_ms - WB_DELAY_MS &&
		    s->base == v.seg_base && s->pos > upto)
			upto = s->pos;
	}
	if (p->wb_fd < 0 || p->wb_base != v.seg_base) {
		if (p->wb_fd >= 0)
			io_close(p->wb_fd);
		partition_seg_path(p, v.seg_base, path);
		p->wb_fd = io_open(path, O_RDONLY, 0);
		if (p->wb_fd < 0) {
			p->wb_fd = -1;
			return;
		}
		p->wb_base = v.seg_base;
		p->wb_done = 0;
	}
	if (v.seg_end_pos - p->wb_done > pcfg(p)->segment_bytes / 2)
		upto = v.seg_end_pos;
	uint64_t end = upto & ~(uint64_t)4095;
	if (end > p->wb_done) {
		io_writeback(p->wb_fd, p->wb_done, end - p->wb_done);
		p->wb_done = end;
	}
}

int partition_sync(struct partition *p)
{
	struct pview v;
	int rc;

	if (p->st_private)
		return 0;
	state_read_view(p->st, &v);
	rc = sync_to(p, v.end_offset);
	int r2 = partition_flush_index(p);
	return rc ? rc : r2;
}

/* ======================================================================== */
/* Append                                                                   */
/* ======================================================================== */

int partition_append(struct partition *p, const mqlog_msg *msgs, size_t n,
		     int sync, uint64_t *base_out)
{
	const mqlog_topic_config *cfg = pcfg(p);
	size_t size;
	uint8_t *buf;
	int rc;

	if (p->t->db->rdonly || p->st_private)
		return mq_err(MQLOG_ERDONLY, "%s: opened read-only", p->dir);
	if (sync == MQLOG_SYNC_DEFAULT)
		sync = cfg->sync;
	if (sync < MQLOG_SYNC_NONE || sync > MQLOG_SYNC_ALWAYS)
		return mq_err(MQLOG_EINVAL, "append: sync policy %d", sync);
	int64_t now = mq_now_ms();
	size_t bound;
	if (MQ_LIKELY(batch_size_bound(msgs, n, &bound) == 0)) {
		/* One pass: validate, encode and hash. */
		buf = encbuf_get(bound);
		if (!buf)
			return mq_err(MQLOG_ENOMEM,
				      "%s: batch buffer of %zu "
				      "bytes",
				      p->dir, bound);
		rc = batch_encode_checked(buf, bound, msgs, n,
					  cfg->max_record_bytes, now, &size);
		if (rc)
			return mq_err_wrap(rc, "%s", p->dir);
	} else {
		/* Huge or unusual input: the exact size names the problem. */
		rc = batch_encoded_size(msgs, n, cfg->max_record_bytes, now,
					&size);
		if (rc)
			return mq_err_wrap(rc, "%s", p->dir);
		buf = encbuf_get(size);
		if (!buf)
			return mq_err(MQLOG_ENOMEM,
				      "%s: batch buffer of %zu "
				      "bytes",
				      p->dir, size);
		batch_encode(buf, size, msgs, n, now);
	}
	return partition_append_encoded(p, buf, size, n, sync, base_out);
}

/*
 * What one batch's append did, for the work that follows the append lock.
 */
struct append_post {
	bool flush;  /* index entries are waiting to be written */
	bool rolled; /* a segment was sealed */
};

/* One encoded batch to append, and the base offset it gets. */
struct abatch {
	uint8_t *buf;  /* encoded and hashed; sealed here */
	size_t size;   /* bytes */
	size_t n;      /* records */
	uint64_t base; /* out: its first offset */
};

/*
 * Write @k batches back to back at the end of the log with one write and
 * publish them; append lock held.  Limits are checked for the @k as a
 * whole.  The batches must fit in the active segment after at most one
 * roll (callers pass several only when they do).  Returns 0, a negative
 * MQLOG_E* code (nothing written), or ADMIT_WAIT when the BLOCK policy says
 * to wait for space (nothing written).
 */
static int append_locked(struct partition *p, struct abatch *b, int k,
			 struct append_post *post)
{
	const mqlog_topic_config *cfg = pcfg(p);
	struct pstate *st = p->st;
	struct iovec iov[IO_IOV_MAX];
	uint64_t base, pos, end, size = 0;
	size_t n = 0;
	int rc;

	if (MQ_UNLIKELY(MQ_LOAD_RELAXED(&st->deleted)))
		return mq_err(MQLOG_EDELETED, "%s", p->dir);
	if (MQ_UNLIKELY(MQ_LOAD_RELAXED(&st->failed)))
		return mq_err(MQLOG_EFAILED, "%s", p->dir);
	for (int i = 0; i < k; i++) {
		size += b[i].size;
		n += b[i].n;
	}
	if (cfg->max_messages > 0 || cfg->retention_bytes > 0) {
		rc = retention_admit(p, n, size);
		if (rc)
			return rc; /* ADMIT_WAIT or an error */
	}
	rc = ensure_active(p);
	if (rc)
		return rc;
	if (st->seg_end_pos > 0 &&
	    st->seg_end_pos + size > cfg->segment_bytes) {
		rc = roll(p);
		if (rc)
			return rc;
		post->flush = true;
		post->rolled = true;
	}
	base = st->end_offset;
	pos = st->seg_end_pos;
	end = pos + size;
	if (end > p->prealloc_end || p->prealloc_base != p->active_base)
		preallocate(p, pos, size);
	for (int i = 0; i < k; i++) {
		b[i].base = base;
		batch_seal(b[i].buf, base);
		iov[i] = (struct iovec){ b[i].buf, b[i].size };
		base += b[i].n;
	}
	MQ_CRASH_POINT("append.before_write");
	rc = k == 1 ? io_pwrite_all(p->active_fd, b[0].buf, size, pos) :
		      io_pwritev_all(p->active_fd, iov, k, pos);
	if (MQ_UNLIKELY(rc)) {
		char path[MQ_PATH_MAX];
		partition_seg_path(p, p->active_base, path);
		/* Take back whatever part of the batches reached the file,
		 * so the next batch starts at the published end. */
		if (io_ftruncate(p->active_fd, pos) != 0)
			fail_stop(p);
		return mq_err(rc, "%s: write %llu bytes at byte %llu", path,
			      (unsigned long long)size,
			      (unsigned long long)pos);
	}

	MQ_CRASH_POINT("append.after_write");
	for (int i = 0; i < k; i++) {
		int64_t bmax = (int64_t)mq_ld64(b[i].buf + 48); /* max_timestamp
								 */
		if (pos == 0 ||
		    pos - st->last_index_pos >= cfg->index_interval_bytes) {
			post->flush |= buffer_entry(
				p, b[i].base, p->active_base, pos, st->max_ts);
			st->last_index_pos = pos;
		}
		if (bmax > st->max_ts)
			st->max_ts = bmax;
		if (bmax > st->seg_max_ts)
			st->seg_max_ts = bmax;
		pos += b[i].size;
	}

	state_publish_begin(st);
	MQ_STORE_RELAXED(&st->seg_end_pos, end);
	MQ_STORE_RELAXED(&st->end_offset, base);
	state_publish_end(st);
	/* Atomic: segment deletion subtracts without the append lock. */
	__atomic_add_fetch(&st->total_bytes, size, __ATOMIC_RELAXED);
	st->appends += (uint64_t)k;
	state_wake(st);
	MQ_CRASH_POINT("append.after_publish");
	return 0;
}

/* The work after the append lock that does not depend on the sync policy. */
static void append_after(struct partition *p, const struct append_post *post)
{
	const mqlog_topic_config *cfg = pcfg(p);

	/* A roll is the moment a segment can start to age out: apply age
	 * retention then, once per segment, without a background thread. */
	bool limited = cfg->max_messages > 0 || cfg->retention_bytes > 0;

	if (post->rolled && cfg->retention_ms > 0)
		(void)retention_maintain(p, mq_now_ms());
	if (post->rolled && cfg->interest)
		(void)retention_interest(p);
	if (limited &&
	    MQ_UNLIKELY(__atomic_load_n(&p->reap_kick, __ATOMIC_RELAXED)) &&
	    __atomic_exchange_n(&p->reap_kick, false, __ATOMIC_ACQ_REL))
		mq_db_start_flusher(p->t->db);
	if (limited && p->t->db->on_watermark)
		retention_watermark(p);
}

/*
 * Append under the lock, waiting for space as long as the BLOCK policy
 * allows.  Returns 0 or a negative MQLOG_E* code.
 */
static int append_admitted(struct partition *p, uint8_t *buf, size_t size,
			   size_t n, uint64_t *base, struct append_post *post)
{
	struct abatch b = { buf, size, n, 0 };
	const mqlog_topic_config *cfg = pcfg(p);
	uint64_t deadline = 0;
	int rc;

	for (;;) {
		uint32_t seen = MQ_LOAD(&p->st->space);

		rc = lock_append(p);
		if (rc)
			return rc;
		rc = append_locked(p, &b, 1, post);
		unlock_append(p);
		if (rc == 0)
			*base = b.base;
		if (rc != ADMIT_WAIT)
			return rc;
		uint64_t mono = mq_mono_ns();
		if (!deadline)
			deadline =
				mono + (uint64_t)cfg->full_block_ms * 1000000u;
		if (mono >= deadline)
			return mq_err(MQLOG_EFULL,
				      "%s: no space after waiting %u ms",
				      p->dir, cfg->full_block_ms);
		retention_wait(p, seen, deadline);
	}
}

/*
 * Group commit of sync-always appends within this process.  One appender at
 * a time is the leader: it takes every request queued behind it, appends
 * them all under one hold of the append lock, syncs once, and hands each its
 * result.  Requests that arrive meanwhile queue up rather than write, so one
 * fdatasync covers whatever arrived during the one before, as a database's
 * log writer does.  (Appenders that each wrote and synced on their own would
 * mostly queue on the sync lock one at a time, and a write issued while a
 * sync runs can wait for that sync while holding the append lock.)
 *
 * A finished group sets each request's state, then bumps one futex word and
 * wakes every waiter with a single FUTEX_WAKE: on few CPUs, waking the
 * members one call at a time lets each preempt the leader in turn, and
 * the group takes longer to gather again.
 */
#define GC_WAIT_MAX_NS 500000u /* the longest a leader waits for company */
#define GC_PAUSE_NS    40000u  /* a pause in arrivals that ends the wait */

enum {
	GC_QUEUED,
	GC_LEAD,
	GC_DONE
};

struct gc_req {
	uint8_t *buf;	     /* encoded batch (the caller's, it waits) */
	size_t size, n;	     /* bytes and records */
	uint64_t base;	     /* assigned base offset */
	int rc;		     /* result; ADMIT_WAIT: go the long way */
	uint32_t state;	     /* GC_* */
	struct gc_req *next; /* queue link */
	char msg[512];	     /* the leader's error message for rc */
};

/* Wait until the leader changes our state from GC_QUEUED.  The word is read
 * before the state, so a bump between the two makes FUTEX_WAIT return at
 * once. */
static void gc_wait(struct partition *p, struct gc_req *me)
{
	for (;;) {
		uint32_t seq = __atomic_load_n(&p->gc_seq, __ATOMIC_ACQUIRE);
		if (__atomic_load_n(&me->state, __ATOMIC_ACQUIRE) != GC_QUEUED)
			return;
		syscall(SYS_futex, &p->gc_seq, FUTEX_WAIT_PRIVATE, seq, NULL,
			NULL, 0);
	}
}

/* Wake every waiter: their states are set. */
static void gc_wake_all(struct partition *p)
{
	__atomic_add_fetch(&p->gc_seq, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &p->gc_seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL,
		0);
}

/* The leader appends @group under one hold of the append lock. */
static void gc_append(struct partition *p, struct gc_req *group,
		      struct append_post *post, uint64_t *target)
{
	const mqlog_topic_config *cfg = pcfg(p);
	bool limited = cfg->max_messages > 0 || cfg->retention_bytes > 0;
	struct abatch run[IO_IOV_MAX];
	struct gc_req *who[IO_IOV_MAX];
	struct gc_req *r = group;
	int rc = lock_append(p);

	while (r) {
		uint64_t room = 0, total = 0;
		int k = 0;

		/* Without limits the batches that fit in the active segment go
		 * in one write; with them each is admitted on its own, as it
		 * would have been alone. */
		if (!rc && cfg->segment_bytes > p->st->seg_end_pos)
			room = cfg->segment_bytes - p->st->seg_end_pos;
		while (r && k < IO_IOV_MAX &&
		       (k == 0 || (!limited && total + r->size <= room))) {
			run[k] = (struct abatch){ r->buf, r->size, r->n, 0 };
			who[k++] = r;
			total += r->size;
			r = r->next;
		}
		int arc = rc ? rc : append_locked(p, run, k, post);
		for (int i = 0; i < k; i++) {
			who[i]->rc = arc;
			who[i]->base = run[i].base;
			if (arc < 0)
				snprintf(who[i]->msg, sizeof who[i]->msg, "%s",
					 mqlog_errmsg(NULL));
			else if (arc == 0 && run[i].base + run[i].n > *target)
				*target = run[i].base + run[i].n;
		}
	}
	if (!rc)
		unlock_append(p);
}

static int append_grouped(struct partition *p, uint8_t *buf, size_t size,
			  size_t n, uint64_t *base_out)
{
	struct gc_req me = { .buf = buf, .size = size, .n = n };
	struct gc_req *group, *r, *head = NULL;
	struct append_post post = { 0 };
	uint64_t target = 0, ts;
	char smsg[sizeof me.msg];
	int rc, src;

	pthread_mutex_lock(&p->gc_mu);
	if (p->gc_tail)
		p->gc_tail->next = &me;
	else
		p->gc_head = &me;
	p->gc_tail = &me;
	p->gc_nq++;
	p->gc_arrival_ns = mq_mono_ns();
	if (!p->gc_leading && p->gc_head == &me) {
		p->gc_leading = true;
		me.state = GC_LEAD;
	}
	pthread_mutex_unlock(&p->gc_mu);
	gc_wait(p, &me);
	if (__atomic_load_n(&me.state, __ATOMIC_ACQUIRE) == GC_DONE)
		goto finish;

	/*
	 * Lead.  The appenders of the last group were all waiting on its
	 * sync, so right after it they come back one by one: give them a
	 * moment to queue behind us rather than sync for one of them now and
	 * for the others next time.  Bounded by half of what a sync costs
	 * here, and only while fewer are queued than the last group had.  The
	 * leader yields rather than sleeps: a wake-up costs more than that.
	 */
	pthread_mutex_lock(&p->gc_mu);
	if (p->gc_nq < p->gc_last_n) {
		uint64_t t0 = mq_mono_ns();
		uint64_t wait = p->gc_sync_ns / 2;

		if (wait > GC_WAIT_MAX_NS)
			wait = GC_WAIT_MAX_NS;
		/* ... and stop early when arrivals pause: the rest are
		 * not about to come (descheduled, or gone). */
		while (p->gc_nq < p->gc_last_n && mq_mono_ns() - t0 < wait &&
		       mq_mono_ns() - p->gc_arrival_ns < GC_PAUSE_NS) {
			pthread_mutex_unlock(&p->gc_mu);
			sched_yield();
			pthread_mutex_lock(&p->gc_mu);
		}
	}
	p->gc_last_n = p->gc_nq;
	group = p->gc_head;
	p->gc_head = p->gc_tail = NULL;
	p->gc_nq = 0;
	pthread_mutex_unlock(&p->gc_mu);

	gc_append(p, group, &post, &target);
	append_after(p, &post);
	ts = mq_mono_ns();
	src = target ? sync_to(p, target) : 0;
	ts = mq_mono_ns() - ts;
	if (src)
		snprintf(smsg, sizeof smsg, "%s", mqlog_errmsg(NULL));

	/* A member may return (and its request, on its stack, go) as soon as
	 * it sees GC_DONE: read the link first. */
	for (r = group; r;) {
		struct gc_req *next = r->next;
		if (r->rc == 0 && src) {
			r->rc = src; /* written but not durable: no ack */
			memcpy(r->msg, smsg, sizeof r->msg);
		}
		__atomic_store_n(&r->state, GC_DONE, __ATOMIC_RELEASE);
		r = next;
	}
	pthread_mutex_lock(&p->gc_mu);
	/* A moving average of the sync time bounds the wait above. */
	p->gc_sync_ns = (p->gc_sync_ns * 7 + ts) / 8;
	p->gc_leading = p->gc_head != NULL;
	head = p->gc_head;
	if (head) /* it stays queued until it takes the queue itself */
		__atomic_store_n(&head->state, GC_LEAD, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&p->gc_mu);
	if (group->next || head)
		gc_wake_all(p);
	/* Derived entries of what was just synced, once nobody waits. */
	if (post.flush)
		(void)partition_flush_index(p);
finish:
	if (me.rc == ADMIT_WAIT) {
		/* A full topic under BLOCK: wait for space on our own. */
		post = (struct append_post){ 0 };
		rc = append_admitted(p, buf, size, n, &me.base, &post);
		append_after(p, &post);
		if (rc == 0)
			rc = sync_to(p, me.base + n);
		if (post.flush)
			(void)partition_flush_index(p);
		if (rc)
			return rc;
		me.rc = 0;
	}
	if (me.rc < 0)
		return mq_err_pass(me.rc, me.msg);
	if (base_out)
		*base_out = me.base;
	return 0;
}

/*
 * The second half of an append, for a batch already encoded and hashed:
 * mqlog_append() encodes its records above; a producer builds its batches
 * record by record (producer.c) and comes here directly.
 */
int partition_append_encoded(struct partition *p, uint8_t *buf, size_t size,
			     size_t n, int sync, uint64_t *base_out)
{
	const mqlog_topic_config *cfg = pcfg(p);
	struct append_post post = { 0 };
	uint64_t base;
	int rc;

	if (p->t->db->rdonly || p->st_private)
		return mq_err(MQLOG_ERDONLY, "%s: opened read-only", p->dir);
	if (sync == MQLOG_SYNC_DEFAULT)
		sync = cfg->sync;
	if (sync < MQLOG_SYNC_NONE || sync > MQLOG_SYNC_ALWAYS)
		return mq_err(MQLOG_EINVAL, "append: sync policy %d", sync);
	if (sync == MQLOG_SYNC_ALWAYS)
		return append_grouped(p, buf, size, n, base_out);

	rc = append_admitted(p, buf, size, n, &base, &post);
	if (rc)
		return rc;
	append_after(p, &post);
	if (base_out)
		*base_out = base;
	pthread_mutex_lock(&p->mu);
	p->dirty = true;
	if (sync == MQLOG_SYNC_INTERVAL)
		p->interval = true;
	pthread_mutex_unlock(&p->mu);
	/* Interval syncs, and writeback of what the other policies leave
	 * dirty (partition_writeback), happen in the flusher thread; the
	 * latter only matters once a segment holds more than a roll should
	 * wait for, so small logs do without the thread. */
	if (MQ_UNLIKELY(!__atomic_load_n(&p->t->db->flusher_running,
					 __ATOMIC_ACQUIRE)) &&
	    (sync == MQLOG_SYNC_INTERVAL || cfg->sync == MQLOG_SYNC_INTERVAL ||
	     MQ_LOAD_RELAXED(&p->st->seg_end_pos) >= PREALLOC_WINDOW))
		mq_db_start_flusher(p->t->db);
	/* What is buffered can go once it is durable (the flusher or the
	 * next sync writes the rest). */
	if (post.flush)
		(void)partition_flush_index(p);
	return 0;
}

/* ======================================================================== */
/* Open / close                                                             */
/* ======================================================================== */

static int ofd_state_lock(int fd, short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof fl);
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	for (;;) {
		if (fcntl(fd, F_OFD_SETLKW, &fl) == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static bool state_current(const struct pstate *st, uint64_t epoch)
{
	return epoch != 0 && MQ_LOAD(&st->magic) == PSTATE_MAGIC &&
	       st->version == PSTATE_VERSION && MQ_LOAD(&st->epoch) == epoch;
}

/* A read-only view from the files, for a directory no writer has open. */
static int open_private(struct partition *p)
{
	struct recover_out ro;

	p->st = calloc(1, sizeof *p->st);
	if (!p->st)
		return mq_err(MQLOG_ENOMEM, "%s", p->dir);
	p->st_private = true;
	return recover_locked(p, false, false, &ro);
}

static int open_shared(struct partition *p)
{
	struct mqlog *db = p->t->db;
	char path[MQ_PATH_MAX];
	uint64_t size;
	void *map;
	int rc, fd;

	snprintf(path, sizeof path, "%s/state", p->dir);
	if (db->rdonly || db->epoch == 0) {
		fd = io_open(path, O_RDONLY, 0);
		if (fd < 0)
			return open_private(p);
		if (io_file_size(fd, &size) != 0 ||
		    size < sizeof(struct pstate)) {
			io_close(fd);
			return open_private(p);
		}
		map = mmap(NULL, PSTATE_FILE_SIZE, PROT_READ, MAP_SHARED, fd,
			   0);
		if (map == MAP_FAILED) {
			io_close(fd);
			return open_private(p);
		}
		if (!state_current(map, db->epoch)) {
			munmap(map, PSTATE_FILE_SIZE);
			io_close(fd);
			return open_private(p);
		}
		p->st = map;
		p->state_fd = fd;
		return 0;
	}

	fd = io_open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return mq_err(fd, "%s", path);
	rc = io_file_size(fd, &size);
	/* Allocate real blocks: a store into a hole of a shared mapping on a
	 * full file system would raise SIGBUS instead of returning ENOSPC. */
	if (!rc && size < PSTATE_FILE_SIZE)
		rc = -posix_fallocate(fd, 0, PSTATE_FILE_SIZE);
	if (rc) {
		io_close(fd);
		return mq_err(rc, "%s: size", path);
	}
	map = mmap(NULL, PSTATE_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		   fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		io_close(fd);
		return mq_err(rc, "%s: mmap", path);
	}
	p->st = map;
	p->state_fd = fd;
	if (state_current(p->st, db->epoch))
		return 0;

	/* First user of this partition in this epoch: rebuild the state from
	 * the log, under the file's OFD lock so that processes starting
	 * together do it once. */
	rc = ofd_state_lock(fd, F_WRLCK);
	if (rc)
		return mq_err(rc, "%s: lock", path);
	if (!state_current(p->st, db->epoch)) {
		struct recover_out ro;
		struct pstate *st = p->st;
		take_trust(p, st);
		memset(st, 0, sizeof *st);
		rc = recover_locked(p, true, false, &ro);
		if (!rc)
			rc = state_init_locks(st);
		if (!rc) {
			st->tail_trusted = state_boot_id(st->boot_id) ? 1 : 0;
			st->version = PSTATE_VERSION;
			st->epoch = db->epoch;
			MQ_STORE(&st->magic, PSTATE_MAGIC);
		}
	}
	(void)ofd_state_lock(fd, F_UNLCK);
	return rc;
}

int partition_open(struct mqlog_topic *t, uint32_t id, struct partition **out)
{
	struct partition *p = calloc(1, sizeof *p);
	int rc;

	if (!p)
		return mq_err(MQLOG_ENOMEM, "%s/%u", t->dir, id);
	p->t = t;
	p->id = id;
	p->state_fd = -1;
	p->active_fd = -1;
	p->wb_fd = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->gc_mu, NULL);
	pthread_mutex_init(&p->del_mu, NULL);
	if (asprintf(&p->dir, "%s/%u", t->dir, id) < 0) {
		p->dir = NULL;
		rc = mq_err(MQLOG_ENOMEM, "%s/%u", t->dir, id);
		goto fail;
	}
	if (!t->db->rdonly && io_mkdir(p->dir, 0755) == 0)
		(void)io_fsync_dir(t->dir);
	rc = open_shared(p);
	if (rc)
		goto fail;
	*out = p;
	return 0;
fail:
	partition_close(p);
	return rc;
}

void partition_close(struct partition *p)
{
	if (!p)
		return;
	if (p->st && !p->st_private && !p->t->db->rdonly) {
		/* Entries still buffered wait for their batches to become
		 * durable (partition_flush_index): sync them rather than
		 * leave the active segment unindexed.  Best effort, as the
		 * index is derived; a failed sync fail-stops as usual. */
		pthread_mutex_lock(&p->mu);
		uint64_t want = p->nibuf ? p->ibuf[p->nibuf - 1].offset + 1 : 0;
		pthread_mutex_unlock(&p->mu);
		if (want > MQ_LOAD(&p->st->durable_offset) &&
		    !MQ_LOAD(&p->st->deleted))
			(void)sync_to(p, want);
		(void)partition_flush_index(p);
		/* Files may change while nobody has them open (a copy, a
		 * repair, damage): the next recovery checks every body. */
		MQ_STORE(&p->st->tail_trusted, 0u);
		/* Segments the background thread has not deleted yet. */
		if (!MQ_LOAD(&p->st->deleted))
			(void)retention_reap(p);
	}
	close_active(p);
	if (p->wb_fd >= 0)
		io_close(p->wb_fd);
	if (p->st) {
		if (p->st_private)
			free(p->st);
		else
			munmap(p->st, PSTATE_FILE_SIZE);
	}
	if (p->state_fd >= 0)
		io_close(p->state_fd);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->gc_mu);
	pthread_mutex_destroy(&p->del_mu);
	free(p->bases);
	free(p->dir);
	free(p);
}

/* ======================================================================== */
/* Rebuild and info                                                         */
/* ======================================================================== */

int partition_rebuild_index(struct partition *p, uint64_t *entries,
			    uint64_t *truncated)
{
	struct recover_out ro;
	int rc;

	if (p->t->db->rdonly || p->st_private)
		return mq_err(MQLOG_ERDONLY, "%s: opened read-only", p->dir);
	rc = lock_append(p);
	if (rc)
		return rc;
	/* Flush this process's buffered entries first: the rebuild replaces
	 * them anyway, and they must not land after it. */
	pthread_mutex_lock(&p->mu);
	p->nibuf = 0;
	p->nsbuf = 0;
	pthread_mutex_unlock(&p->mu);
	close_active(p);
	rc = recover_locked(p, true, true, &ro);
	state_wake(p->st);
	unlock_append(p);
	if (entries)
		*entries = ro.entries;
	if (truncated)
		*truncated = ro.truncated;
	return rc;
}

double partition_usage(struct partition *p)
{
	const mqlog_topic_config *c = pcfg(p);
	double usage = 0;
	struct pview v;

	if (c->max_messages > 0) {
		state_read_view(p->st, &v);
		usage = (double)(v.end_offset - v.start_offset) /
			(double)c->max_messages;
	}
	if (c->retention_bytes > 0) {
		double u = (double)MQ_LOAD_RELAXED(&p->st->total_bytes) /
			   (double)c->retention_bytes;
		if (u > usage)
			usage = u;
	}
	return usage;
}

void partition_info_fill(struct partition *p, mqlog_partition_info *info)
{
	struct pview v;
	uint64_t bytes = 0;
	int dfd;

	state_read_view(p->st, &v);
	memset(info, 0, sizeof *info);
	info->start_offset = v.start_offset;
	info->end_offset = v.end_offset;
	info->durable_offset = MQ_LOAD(&p->st->durable_offset);
	info->active_base = v.seg_base;
	info->failed = MQ_LOAD(&p->st->failed) ? 1 : 0;
	dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pthread_mutex_lock(&p->mu);
	(void)refresh_segments_locked(p);
	info->segments = p->nbases;
	for (size_t i = 0; i < p->nbases; i++) {
		if (p->bases[i] == v.seg_base)
			bytes += v.seg_end_pos;
		else
			bytes += sealed_size(p, dfd, p->bases[i]);
	}
	pthread_mutex_unlock(&p->mu);
	if (dfd >= 0)
		close(dfd);
	info->bytes = bytes;
	info->usage = partition_usage(p);
}
