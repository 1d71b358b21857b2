/*
 * lmdbcheck.c - a structural check of the LMDB file meta/data.mdb, run on
 * every open before LMDB reads anything but the meta pages.
 *
 * LMDB 0.9 keeps no checksums and trusts every byte of its file: a page
 * number that points past the end of the file makes it touch its map beyond
 * the file (SIGBUS), a node offset or size that runs past its page makes it
 * read another page or outside the map, and a page of the wrong kind trips
 * an assertion that aborts the process.  The library must never crash, so
 * this file walks every page reachable from the snapshot LMDB is about to
 * use and answers MQLOG_ECORRUPT if anything would let LMDB go astray.  It
 * includes no LMDB header: it reads the file with its own description of
 * the format (LMDB 0.9, 64-bit, host byte order), below.
 *
 * The file is a sequence of pages of psize bytes (4096 here).  Pages 0 and
 * 1 are meta pages; transaction N writes meta page N % 2.  Every other page
 * up to last_pg is either reachable from a meta page or listed as free, and
 * never both.
 *
 *   page header (16 bytes, every page but the 2nd.. page of an overflow run)
 *     0  u64 pgno          its own page number
 *     8  u16 pad
 *    10  u16 flags         BRANCH 0x01, LEAF 0x02, OVERFLOW 0x04, META 0x08
 *    12  u16 lower         branch/leaf: end of the node offsets (16 + 2 n)
 *    14  u16 upper         branch/leaf: start of the node area
 *    12  u32 pages         overflow: pages in the run, this one included
 *    16  u16 ptrs[n]       branch/leaf: offsets of the n nodes in the page
 *
 *   meta (at byte 16 of pages 0 and 1)
 *     0  u32 magic 0xBEEFC0DE, 4 u32 version 1, 8 address, 16 mapsize,
 *    24  db[0]: the free-page database (its pad is psize, its flags
 *        INTEGERKEY 0x08 plus the flags below 0x10000 of the environment
 *        that created the file: FIXEDMAP 0x01, NOSUBDIR 0x4000)
 *    72  db[1]: the main database (names of the named databases)
 *   120  u64 last_pg, 128 u64 txnid
 *
 *   db (48 bytes; also the value of a named database's node in main)
 *     0  u32 pad, 4 u16 flags, 6 u16 depth, 8 u64 branch_pages,
 *    16  u64 leaf_pages, 24 u64 overflow_pages, 32 u64 entries,
 *    40  u64 root (all ones: empty)
 *
 *   node (at ptrs[i], 2-byte aligned)
 *     0  u16 lo, 2 u16 hi  leaf: data size lo | hi << 16
 *                          branch: child page lo | hi << 16 | flags << 32
 *     4  u16 flags         leaf: BIGDATA 0x01 (the data is the u64 number
 *                          of an overflow run), SUBDATA 0x02 (a db record),
 *                          DUPDATA 0x04 (sorted duplicates: unused here)
 *     6  u16 ksize, then the key, then the data
 *
 * A tree of depth d has branch pages on levels 1..d-1 and leaf pages on
 * level d.  The free-page database is keyed by u64 transaction ids; each
 * value is a list of page numbers, u64 count first.  The index opens its
 * named databases without flags (no sorted duplicates), so a DUPDATA node
 * or a database with flags is damage too.
 *
 * Concurrency.  The caller holds a read transaction while the check runs:
 * LMDB then reuses none of the snapshot's pages, so they stay as they are
 * while another process writes.  Only the meta page can change under us
 * (transaction N + 2 rewrites it): the check takes a copy first and, before
 * it reports damage, makes sure the copy is still what the file says.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LC_PAGEHDR   16u
#define LC_NODEHDR   8u
#define LC_META_OFF  16u  /* the meta within its page */
#define LC_META_SIZE 136u /* bytes of the meta */
#define LC_DB_SIZE   48u  /* bytes of a db record */
#define LC_MAGIC     0xBEEFC0DEu
#define LC_VERSION   1u
#define LC_MIN_PSIZE 512u
#define LC_MAX_PSIZE 65536u
#define LC_MAX_DEPTH 32u /* LMDB's cursor stack */
#define LC_NO_PAGE   UINT64_MAX
#define LC_NUM_METAS 2u

#define LC_P_BRANCH   0x01u
#define LC_P_LEAF     0x02u
#define LC_P_OVERFLOW 0x04u
#define LC_P_META     0x08u

#define LC_F_BIGDATA 0x01u
#define LC_F_SUBDATA 0x02u
#define LC_F_DUPDATA 0x04u

#define LC_INTEGERKEY 0x08u /* the free-page database's (and env's) flags */
/*
 * The flags of the free-page database are those of the environment that
 * created the file, masked to 16 bits (mdb_env_init_meta0: mm_flags =
 * me_flags & 0xffff | MDB_INTEGERKEY), for good: no commit changes them,
 * and a compacting copy writes those of the copying environment.  Of the
 * flags mdb_env_open accepts, MDB_FIXEDMAP and MDB_NOSUBDIR fall below
 * 0x10000; LMDB reads neither back from the meta page.
 */
#define LC_ENV_FLAGS_KEPT 0x4001u

/* Offsets in the meta and in a db record. */
#define LC_M_MAGIC   0u
#define LC_M_VERSION 4u
#define LC_M_DBS     24u
#define LC_M_LAST_PG 120u
#define LC_M_TXNID   128u
#define LC_D_PAD     0u
#define LC_D_FLAGS   4u
#define LC_D_DEPTH   6u
#define LC_D_ROOT    40u

enum lc_kind {
	LC_FREE, /* the free-page database */
	LC_MAIN, /* the main database: names of the named ones */
	LC_NAMED /* a named database */
};

struct lc {
	const char *file;   /* path of data.mdb, for messages */
	const uint8_t *map; /* the file, read-only, npages whole pages */
	size_t psize;	    /* page size */
	uint64_t npages;    /* whole pages in the file */
	uint64_t last_pg;   /* last page of the snapshot (free ones too) */
	unsigned maxkey;    /* largest key LMDB accepts */
	uint64_t *seen;	    /* one bit per page of the file: reached */
	uint16_t *start;    /* per 2 bytes of a page: index + 1 of the node
			       starting there; all 0 between pages */
	enum lc_kind kind;  /* database being walked */
	char db[40];	    /* its name, printable, for messages */
};

static uint16_t lc_ld16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

static uint32_t lc_ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

static uint64_t lc_ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

/*
 * lc_bad - report damage found on page @pgno and return MQLOG_ECORRUPT.
 * The advice is the only way back: the index is rebuilt from the log, but
 * consumer-group offsets live only here.
 */
static int lc_bad(const struct lc *c, uint64_t pgno, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int lc_bad(const struct lc *c, uint64_t pgno, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return mq_err(MQLOG_ECORRUPT,
		      "%s: page %" PRIu64 " (database %s): %s; delete meta/ to "
		      "rebuild "
		      "the index (consumer-group offsets are lost with it)",
		      c->file, pgno, c->db, what);
}

static int lc_bad_meta(const char *file, unsigned slot, const char *what)
{
	return mq_err(
		MQLOG_ECORRUPT,
		"%s: page %u (meta page): %s; delete meta/ to rebuild the "
		"index (consumer-group offsets are lost with it)",
		file, slot, what);
}

/*
 * Mark page @pgno reached from page @from (node @node of it, or -1 for a
 * meta page); a page reached twice is a cycle or a page with two owners
 * (two parents, or in use and free at once).
 */
static int lc_claim(struct lc *c, uint64_t from, int node, uint64_t pgno,
		    const char *what)
{
	uint64_t bit = UINT64_C(1) << (pgno & 63);
	char at[32] = "";

	if (node >= 0)
		snprintf(at, sizeof at, "node %d: ", node);
	if (pgno < LC_NUM_METAS)
		return lc_bad(c, from, "%s%s is meta page %" PRIu64, at, what,
			      pgno);
	if (pgno >= c->npages || pgno > c->last_pg)
		return lc_bad(c, from,
			      "%s%s %" PRIu64 " is past the end of the file "
			      "(%" PRIu64 " pages, last page %" PRIu64 ")",
			      at, what, pgno, c->npages, c->last_pg);
	if (c->seen[pgno >> 6] & bit)
		return lc_bad(c, from,
			      "%s%s %" PRIu64 " is reached twice (a cycle, or "
			      "a page with two owners)",
			      at, what, pgno);
	c->seen[pgno >> 6] |= bit;
	return 0;
}

/* An overflow run of @dsize data bytes at page @ov, named by node @i of
 * leaf page @from. */
static int lc_overflow(struct lc *c, uint64_t from, unsigned i, uint64_t ov,
		       uint64_t dsize, const uint8_t **data)
{
	const uint8_t *p;
	uint64_t need, pages, k;
	int rc;

	rc = lc_claim(c, from, (int)i, ov, "overflow page");
	if (rc)
		return rc;
	p = c->map + ov * c->psize;
	if (lc_ld64(p) != ov)
		return lc_bad(c, ov, "overflow page says it is page %" PRIu64,
			      lc_ld64(p));
	if (lc_ld16(p + 10) != LC_P_OVERFLOW)
		return lc_bad(c, ov,
			      "flags 0x%x where an overflow page belongs "
			      "(node %u of page %" PRIu64 ")",
			      lc_ld16(p + 10), i, from);
	pages = lc_ld32(p + 12);
	need = (LC_PAGEHDR + dsize + c->psize - 1) / c->psize;
	if (pages < need)
		return lc_bad(c, ov,
			      "overflow run of %" PRIu64 " pages holds less "
			      "than the %" PRIu64 " bytes of node %u of page "
			      "%" PRIu64,
			      pages, dsize, i, from);
	if (pages > c->npages - ov)
		return lc_bad(c, ov,
			      "overflow run of %" PRIu64 " pages runs past "
			      "the end of the file (%" PRIu64 " pages)",
			      pages, c->npages);
	for (k = 1; k < pages; k++) {
		rc = lc_claim(c, ov, -1, ov + k, "overflow page");
		if (rc)
			return rc;
	}
	*data = p + LC_PAGEHDR;
	return 0;
}

/* A list of free pages: u64 count, then the page numbers. */
static int lc_free_list(struct lc *c, uint64_t from, unsigned i,
			const uint8_t *data, uint64_t dsize)
{
	uint64_t n, k, pgno;
	int rc;

	if (dsize < 8 || dsize % 8)
		return lc_bad(c, from,
			      "node %u: free list of %" PRIu64 " bytes", i,
			      dsize);
	n = lc_ld64(data);
	if (n > dsize / 8 - 1)
		return lc_bad(c, from,
			      "node %u: free list of %" PRIu64 " pages in "
			      "%" PRIu64 " bytes",
			      i, n, dsize);
	for (k = 1; k <= n; k++) {
		pgno = lc_ld64(data + 8 * k);
		if (pgno < LC_NUM_METAS || pgno > c->last_pg)
			return lc_bad(c, from,
				      "node %u: free page %" PRIu64 " out of "
				      "range (last page %" PRIu64 ")",
				      i, pgno, c->last_pg);
		/* Free pages past the end of the file are allowed: a page
		 * freed in the transaction that allocated it is never
		 * written. */
		if (pgno >= c->npages)
			continue;
		rc = lc_claim(c, from, (int)i, pgno, "free page");
		if (rc)
			return rc;
	}
	return 0;
}

static int lc_tree(struct lc *c, const uint8_t *db, enum lc_kind kind,
		   const char *name, size_t name_len, uint64_t from, int node);

/*
 * The bytes node @i of page @p takes: its header, its key and (in a leaf)
 * its data or the number of its overflow run, rounded up to even.  0 when
 * the node does not fit in the page.
 */
static unsigned lc_node_size(const struct lc *c, const uint8_t *p, unsigned i,
			     bool leaf)
{
	unsigned off = lc_ld16(p + LC_PAGEHDR + 2 * i);
	const uint8_t *nd = p + off;
	uint64_t size;

	if (off % 2 || off > c->psize - LC_NODEHDR)
		return 0;
	size = LC_NODEHDR + (uint64_t)lc_ld16(nd + 6);
	if (leaf)
		size += lc_ld16(nd + 4) & LC_F_BIGDATA ?
				8u :
				lc_ld16(nd) | (uint64_t)lc_ld16(nd + 2) << 16;
	size += size % 2;
	return size <= c->psize - off ? (unsigned)size : 0;
}

/*
 * The nodes of a page fill its node area exactly: LMDB adds a node just
 * below the others and closes the gap when it deletes one, and it moves
 * bytes on that assumption.  Node starts are marked in c->start (one slot
 * per two bytes), then followed from upper to the end of the page.
 */
static int lc_nodes_tile(struct lc *c, const uint8_t *p, uint64_t pgno,
			 unsigned n, unsigned upper, bool leaf)
{
	unsigned i, off, pos, k;
	int rc = 0;

	for (i = 0; i < n; i++) {
		off = lc_ld16(p + LC_PAGEHDR + 2 * i);
		if (c->start[off / 2]) {
			rc = lc_bad(c, pgno, "nodes %u and %u share offset %u",
				    c->start[off / 2] - 1u, i, off);
			n = i;
			goto clear;
		}
		c->start[off / 2] = (uint16_t)(i + 1);
	}
	for (pos = upper, k = 0; pos < c->psize; k++) {
		i = c->start[pos / 2];
		if (i == 0) {
			rc = lc_bad(c, pgno,
				    "no node starts at offset %u: the nodes "
				    "overlap or leave a gap",
				    pos);
			goto clear;
		}
		pos += lc_node_size(c, p, i - 1, leaf);
	}
	if (pos != c->psize || k != n)
		rc = lc_bad(c, pgno, "the nodes do not fill the page");
clear:
	for (i = 0; i < n; i++)
		c->start[lc_ld16(p + LC_PAGEHDR + 2 * i) / 2] = 0;
	return rc;
}

/* Page @pgno on level @level (1 = root) of a tree of depth @depth, reached
 * through node @node of page @from. */
static int lc_page(struct lc *c, uint64_t from, int node, uint64_t pgno,
		   unsigned level, unsigned depth)
{
	const uint8_t *p, *nd, *data;
	unsigned flags, want, lower, upper, n, i, off, nflags, ksize;
	uint64_t dsize;
	bool leaf;
	int rc;

	rc = lc_claim(c, from, node, pgno,
		      level == 1 ? "root page" : "child page");
	if (rc)
		return rc;
	p = c->map + pgno * c->psize;
	if (lc_ld64(p) != pgno)
		return lc_bad(c, pgno, "the page header says page %" PRIu64,
			      lc_ld64(p));
	flags = lc_ld16(p + 10);
	leaf = level == depth;
	want = leaf ? LC_P_LEAF : LC_P_BRANCH;
	if (flags != want)
		return lc_bad(c, pgno,
			      "flags 0x%x where a %s page belongs (level %u "
			      "of %u)",
			      flags, leaf ? "leaf" : "branch", level, depth);
	lower = lc_ld16(p + 12);
	upper = lc_ld16(p + 14);
	if (lower < LC_PAGEHDR || lower % 2 || upper % 2 || lower > upper ||
	    upper > c->psize)
		return lc_bad(c, pgno, "bounds %u..%u of the free space", lower,
			      upper);
	n = (lower - LC_PAGEHDR) / 2;
	if (n == 0 || (!leaf && n < 2 && c->kind != LC_FREE))
		return lc_bad(c, pgno, "%s page with %u nodes",
			      leaf ? "leaf" : "branch", n);

	/* Every node inside the page, of a sane key size, flags known. */
	for (i = 0; i < n; i++) {
		off = lc_ld16(p + LC_PAGEHDR + 2 * i);
		if (off < upper || off % 2 || off > c->psize - LC_NODEHDR)
			return lc_bad(c, pgno,
				      "node %u points past the end of the page"
				      " (offset %u, node area %u..%zu)",
				      i, off, upper, c->psize);
		if (lc_node_size(c, p, i, leaf) == 0)
			return lc_bad(c, pgno,
				      "node %u at offset %u runs past the end "
				      "of the page",
				      i, off);
		nd = p + off;
		nflags = lc_ld16(nd + 4);
		ksize = lc_ld16(nd + 6);
		/* The first key of a branch page is never read. */
		if ((leaf || i > 0) && (ksize == 0 || ksize > c->maxkey ||
					(c->kind == LC_FREE && ksize != 8)))
			return lc_bad(c, pgno, "node %u: key of %u bytes", i,
				      ksize);
		if (leaf && nflags != 0 && nflags != LC_F_BIGDATA &&
		    nflags != LC_F_SUBDATA)
			return lc_bad(c, pgno, "node %u: flags 0x%x", i,
				      nflags);
	}
	rc = lc_nodes_tile(c, p, pgno, n, upper, leaf);
	if (rc)
		return rc;

	/* Then what the nodes point to. */
	for (i = 0; i < n; i++) {
		nd = p + lc_ld16(p + LC_PAGEHDR + 2 * i);
		nflags = lc_ld16(nd + 4);
		ksize = lc_ld16(nd + 6);
		if (!leaf) {
			uint64_t child = lc_ld16(nd) |
					 (uint64_t)lc_ld16(nd + 2) << 16 |
					 (uint64_t)nflags << 32;
			rc = lc_page(c, pgno, (int)i, child, level + 1, depth);
			if (rc)
				return rc;
			continue;
		}
		dsize = lc_ld16(nd) | (uint64_t)lc_ld16(nd + 2) << 16;
		data = nd + LC_NODEHDR + ksize;
		if (nflags == LC_F_BIGDATA) {
			rc = lc_overflow(c, pgno, i, lc_ld64(data), dsize,
					 &data);
			if (rc)
				return rc;
		}
		if (nflags == LC_F_SUBDATA) {
			if (c->kind != LC_MAIN || dsize != LC_DB_SIZE)
				return lc_bad(c, pgno,
					      "node %u: a database record of "
					      "%" PRIu64 " bytes",
					      i, dsize);
			rc = lc_tree(c, data, LC_NAMED,
				     (const char *)nd + LC_NODEHDR, ksize, pgno,
				     (int)i);
			if (rc)
				return rc;
		} else if (c->kind == LC_FREE) {
			rc = lc_free_list(c, pgno, i, data, dsize);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* The tree of db record @db, named in messages after @name. */
static int lc_tree(struct lc *c, const uint8_t *db, enum lc_kind kind,
		   const char *name, size_t name_len, uint64_t from, int node)
{
	enum lc_kind save_kind = c->kind;
	char save_db[sizeof c->db];
	unsigned flags = lc_ld16(db + LC_D_FLAGS);
	unsigned depth = lc_ld16(db + LC_D_DEPTH);
	uint64_t root = lc_ld64(db + LC_D_ROOT);
	size_t k;
	int rc;

	memcpy(save_db, c->db, sizeof save_db);
	c->kind = kind;
	if (kind == LC_NAMED) {
		/* The name as a printable string. */
		for (k = 0; k < name_len && k < sizeof c->db - 1; k++)
			c->db[k] = name[k] >= 0x20 && name[k] < 0x7f ? name[k] :
								       '?';
		c->db[k] = '\0';
	} else {
		snprintf(c->db, sizeof c->db, "%s", name);
	}

	if (kind == LC_FREE)
		flags &= ~LC_ENV_FLAGS_KEPT;
	if (flags != (kind == LC_FREE ? LC_INTEGERKEY : 0u)) {
		rc = lc_bad(c, from, "database flags 0x%x", flags);
		goto out;
	}
	rc = 0;
	if (root == LC_NO_PAGE) {
		if (depth != 0)
			rc = lc_bad(c, from, "empty database of depth %u",
				    depth);
		goto out;
	}
	if (depth == 0 || depth > LC_MAX_DEPTH) {
		rc = lc_bad(c, from, "database of depth %u", depth);
		goto out;
	}
	rc = lc_page(c, from, node, root, 1, depth);
out:
	c->kind = save_kind;
	memcpy(c->db, save_db, sizeof c->db);
	return rc;
}

/*
 * The fields of a meta page that must hold whatever the transaction:
 * magic, version, page size, flags, and a last page whose map fits in
 * memory arithmetic.  @m is the meta, @slot its page.
 */
static int lc_meta_ok(const char *file, const uint8_t *m, unsigned slot,
		      size_t *psize)
{
	uint32_t ps = lc_ld32(m + LC_M_DBS + LC_D_PAD);
	uint64_t last = lc_ld64(m + LC_M_LAST_PG);
	char what[128];

	if (lc_ld32(m + LC_M_MAGIC) != LC_MAGIC)
		return lc_bad_meta(file, slot, "no LMDB magic");
	if (lc_ld32(m + LC_M_VERSION) != LC_VERSION) {
		snprintf(what, sizeof what, "version %u",
			 lc_ld32(m + LC_M_VERSION));
		return lc_bad_meta(file, slot, what);
	}
	if (ps < LC_MIN_PSIZE || ps > LC_MAX_PSIZE || (ps & (ps - 1))) {
		snprintf(what, sizeof what, "page size %u", ps);
		return lc_bad_meta(file, slot, what);
	}
	if ((lc_ld16(m + LC_M_DBS + LC_D_FLAGS) & ~LC_ENV_FLAGS_KEPT) !=
	    LC_INTEGERKEY) {
		snprintf(what, sizeof what, "environment flags 0x%x",
			 lc_ld16(m + LC_M_DBS + LC_D_FLAGS));
		return lc_bad_meta(file, slot, what);
	}
	if (last < LC_NUM_METAS - 1 || last >= (UINT64_C(1) << 47) / ps) {
		snprintf(what, sizeof what, "last page %" PRIu64, last);
		return lc_bad_meta(file, slot, what);
	}
	*psize = ps;
	return 0;
}

int lmdbcheck_meta(const char *file)
{
	uint8_t page[LC_META_OFF + LC_META_SIZE];
	size_t psize[LC_NUM_METAS];
	unsigned slot;
	off_t at = 0;
	ssize_t got;
	int fd, rc = 0;

#if SIZE_MAX < UINT64_MAX
	return 0; /* the layout above is the 64-bit one */
#endif
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : mq_err(-errno, "%s: open", file);
	for (slot = 0; slot < LC_NUM_METAS; slot++) {
		got = pread(fd, page, sizeof page, at);
		if (got < 0) {
			rc = mq_err(-errno, "%s: read", file);
			goto out;
		}
		/* LMDB itself rejects a short or foreign file cleanly;
		 * leave that answer to it. */
		if ((size_t)got < sizeof page ||
		    !(lc_ld16(page + 10) & LC_P_META) ||
		    lc_ld32(page + LC_META_OFF + LC_M_MAGIC) != LC_MAGIC ||
		    lc_ld32(page + LC_META_OFF + LC_M_VERSION) != LC_VERSION)
			goto out;
		rc = lc_meta_ok(file, page + LC_META_OFF, slot, &psize[slot]);
		if (rc)
			goto out;
		at = (off_t)psize[slot];
	}
	if (psize[0] != psize[1])
		rc = lc_bad_meta(file, 1, "page size unlike page 0's");
out:
	close(fd);
	return rc;
}

/* Whether the meta page of slot @slot still holds the bytes of @m. */
static bool lc_meta_same(int fd, size_t psize, unsigned slot, const uint8_t *m)
{
	uint8_t now[LC_META_SIZE];

	return pread(fd, now, sizeof now,
		     (off_t)(slot * psize + LC_META_OFF)) ==
		       (ssize_t)sizeof now &&
	       memcmp(now, m, sizeof now) == 0;
}

int lmdbcheck_snapshot(const char *file, uint64_t txnid, unsigned maxkey)
{
	struct lc c = { .file = file, .maxkey = maxkey };
	uint8_t meta[LC_META_SIZE];
	unsigned slot = (unsigned)(txnid & 1);
	size_t mapped = 0, psize;
	void *map = MAP_FAILED;
	struct stat st;
	int fd, rc;

#if SIZE_MAX < UINT64_MAX
	return 0;
#endif
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mq_err(-errno, "%s: open", file);
	if (fstat(fd, &st) != 0) {
		rc = mq_err(-errno, "%s: stat", file);
		goto out;
	}
	/* Page 0's meta gives the page size (both were checked before LMDB
	 * opened the file, and it never changes). */
	if (pread(fd, meta, sizeof meta, LC_META_OFF) != (ssize_t)sizeof meta) {
		rc = lc_bad_meta(file, 0, "cut short");
		goto out;
	}
	rc = lc_meta_ok(file, meta, 0, &c.psize);
	if (rc)
		goto out;
	c.npages = (uint64_t)st.st_size / c.psize;
	if (c.npages < LC_NUM_METAS) {
		rc = lc_bad_meta(file, 1, "cut short");
		goto out;
	}
	/* Transaction N is described by meta page N % 2; a writer two
	 * transactions ahead may have overwritten it already: retry. */
	if (pread(fd, meta, sizeof meta,
		  (off_t)(slot * c.psize + LC_META_OFF)) !=
		    (ssize_t)sizeof meta ||
	    lc_ld64(meta + LC_M_TXNID) != txnid) {
		rc = 1;
		goto out;
	}
	rc = lc_meta_ok(file, meta, slot, &psize);
	if (rc == 0 && psize != c.psize)
		rc = lc_bad_meta(file, slot, "page size unlike page 0's");
	if (rc)
		goto check_copy;
	c.last_pg = lc_ld64(meta + LC_M_LAST_PG);

	mapped = (size_t)c.npages * c.psize;
	map = mmap(NULL, mapped, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		rc = mq_err(-errno, "%s: map %zu bytes", file, mapped);
		goto out;
	}
	c.map = map;
	c.seen = calloc((size_t)(c.npages + 63) / 64, sizeof *c.seen);
	c.start = calloc(c.psize / 2, sizeof *c.start);
	if (!c.seen || !c.start) {
		rc = mq_err(MQLOG_ENOMEM, "%s: page map of %" PRIu64 " pages",
			    file, c.npages);
		goto out;
	}
	rc = lc_tree(&c, meta + LC_M_DBS, LC_FREE, "free pages",
		     sizeof "free pages" - 1, slot, -1);
	if (rc == 0)
		rc = lc_tree(&c, meta + LC_M_DBS + LC_DB_SIZE, LC_MAIN, "main",
			     sizeof "main" - 1, slot, -1);
check_copy:
	/* Damage seen through a copy the writer was still rewriting is
	 * no damage: look again at a fresh snapshot. */
	if (rc == MQLOG_ECORRUPT && !lc_meta_same(fd, c.psize, slot, meta))
		rc = 1;
out:
	free(c.seen);
	free(c.start);
	if (map != MAP_FAILED)
		munmap(map, mapped);
	close(fd);
	return rc;
}
