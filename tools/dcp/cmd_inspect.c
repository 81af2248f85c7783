/*
 * dcp inspect: what a checkpoint holds, from its metadata alone.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dcp_tool.h"

static const char USAGE[] =
        "usage: dcp inspect [--json] [--summary] URL\n"
        "\n"
        "Prints what the checkpoint at URL holds, from its metadata alone (no data is read):\n"
        "format version, save id, checksum scheme, every key with its type, dtype, shape and\n"
        "stored chunks (box, file, offset, length, block checksums), and the data files.\n"
        "\n"
        "  --json     print everything as one JSON object (every checksum in full)\n"
        "  --summary  print only the summary (format, save id, counts, bytes, files)\n"
        "\n"
        "Exit status: 0 printed; 1 the metadata could not be read; 2 usage error or invalid URL.\n";

typedef struct file_entry {
	const char *path; /* borrowed from the metadata */
	uint64_t bytes;
	size_t chunks;
} file_entry;

static int cmp_path(const void *a, const void *b)
{
	return strcmp(((const file_entry *)a)->path, ((const file_entry *)b)->path);
}

/* The distinct data files of md, sorted by path, with their bytes and chunk
 * counts. *out is malloc'd (NULL when there are none). */
static int collect_files(const dcp_metadata *md, file_entry **out, size_t *nout)
{
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < md->nitems; i++)
		cap += md->items[i].nchunks;
	file_entry *all = calloc(cap > 0 ? cap : 1, sizeof(*all));
	if (all == NULL)
		return DCP_ENOMEM;
	for (size_t i = 0; i < md->nitems; i++) {
		for (size_t c = 0; c < md->items[i].nchunks; c++) {
			const dcp_storage_info *s = &md->items[i].chunks[c].storage;
			all[n].path = s->path != NULL ? s->path : "";
			all[n].bytes = s->length;
			all[n].chunks = 1;
			n++;
		}
	}
	qsort(all, n, sizeof(*all), cmp_path);
	size_t u = 0;
	for (size_t i = 0; i < n; i++) {
		if (u > 0 && strcmp(all[u - 1].path, all[i].path) == 0) {
			all[u - 1].bytes += all[i].bytes;
			all[u - 1].chunks++;
		} else {
			all[u++] = all[i];
		}
	}
	*out = all;
	*nout = u;
	return DCP_OK;
}

int md_count(const dcp_metadata *md, md_totals *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < md->nitems; i++) {
		if (md->items[i].type == DCP_ITEM_TENSOR)
			out->tensors++;
		else
			out->bytes_items++;
		out->chunks += md->items[i].nchunks;
		for (size_t c = 0; c < md->items[i].nchunks; c++)
			out->stored_bytes += md->items[i].chunks[c].storage.length;
	}
	file_entry *files = NULL;
	int rc = collect_files(md, &files, &out->files);
	free(files);
	return rc;
}

static void fmt_dims(char *buf, size_t len, int ndim, const uint64_t *v)
{
	size_t n = (size_t)snprintf(buf, len, "[");
	for (int d = 0; d < ndim && n < len; d++)
		n += (size_t)snprintf(buf + n, len - n, "%s%" PRIu64, d ? ", " : "", v[d]);
	if (n < len)
		snprintf(buf + n, len - n, "]");
}

static void fmt_box(char *buf, size_t len, int ndim, const uint64_t *off, const uint64_t *sz)
{
	size_t n = (size_t)snprintf(buf, len, "[");
	for (int d = 0; d < ndim && n < len; d++)
		n += (size_t)snprintf(buf + n, len - n, "%s%" PRIu64 ":%" PRIu64, d ? ", " : "", off[d],
		                      off[d] + sz[d]);
	if (n < len)
		snprintf(buf + n, len - n, "]");
}

void inspect_print_summary(FILE *f, const char *url, const dcp_metadata *md)
{
	md_totals t;
	char b[32], blk[32];
	int rc = md_count(md, &t);
	fprintf(f, "checkpoint  %s\n", url);
	fprintf(f, "format      %u.%u\n", md->format_major, md->format_minor);
	fprintf(f, "save id     %s\n", md->save_id != NULL ? md->save_id : "(none)");
	fprintf(f, "checksums   %s per %s block\n", DCP_CHECKSUM_ALGO,
	        tool_fmt_bytes(md->checksum_block, blk, sizeof(blk)));
	fprintf(f, "items       %zu tensors, %zu bytes items, %zu stored chunks\n", t.tensors, t.bytes_items,
	        t.chunks);
	if (rc == DCP_OK)
		fprintf(f, "stored      %s in %zu files\n", tool_fmt_bytes(t.stored_bytes, b, sizeof(b)),
		        t.files);
	else
		fprintf(f, "stored      %s (out of memory counting files)\n",
		        tool_fmt_bytes(t.stored_bytes, b, sizeof(b)));
}

static void print_details(const dcp_metadata *md, const file_entry *files, size_t nfiles)
{
	char b[32], dims[256], box[512];
	printf("\nkeys:\n");
	for (size_t i = 0; i < md->nitems; i++) {
		const dcp_md_item *it = &md->items[i];
		uint64_t bytes = 0;
		for (size_t c = 0; c < it->nchunks; c++)
			bytes += it->chunks[c].storage.length;
		if (it->type == DCP_ITEM_TENSOR) {
			fmt_dims(dims, sizeof(dims), it->ndim, it->shape);
			printf("  %s  tensor %s %s  %zu chunk%s  %s\n", it->key, dcp_dtype_name(it->dtype),
			       dims, it->nchunks, it->nchunks == 1 ? "" : "s",
			       tool_fmt_bytes(bytes, b, sizeof(b)));
		} else {
			printf("  %s  bytes  %s\n", it->key, tool_fmt_bytes(bytes, b, sizeof(b)));
		}
		for (size_t c = 0; c < it->nchunks; c++) {
			const dcp_md_chunk *ch = &it->chunks[c];
			const dcp_storage_info *s = &ch->storage;
			if (it->type == DCP_ITEM_TENSOR)
				fmt_box(box, sizeof(box), it->ndim, ch->offsets, ch->sizes);
			else
				snprintf(box, sizeof(box), "bytes");
			printf("    %s  %s @ %" PRIu64 " +%" PRIu64, box, s->path != NULL ? s->path : "",
			       s->offset, s->length);
			if (s->nsums > 0)
				printf("  %s %016" PRIx64 "%s (%" PRIu32 " block%s)", DCP_CHECKSUM_ALGO,
				       s->sums[0], s->nsums > 1 ? ",..." : "", s->nsums,
				       s->nsums == 1 ? "" : "s");
			printf("\n");
		}
	}
	printf("\nfiles:\n");
	for (size_t i = 0; i < nfiles; i++)
		printf("  %s  %s  %zu chunk%s\n", files[i].path, tool_fmt_bytes(files[i].bytes, b, sizeof(b)),
		       files[i].chunks, files[i].chunks == 1 ? "" : "s");
}

static cJSON *u64_array(const uint64_t *v, int n)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; a != NULL && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
	return a;
}

static char *to_json(const char *url, const dcp_metadata *md, const file_entry *files, size_t nfiles)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	md_totals t;
	md_count(md, &t);
	char fmt[32];
	snprintf(fmt, sizeof(fmt), "%u.%u", md->format_major, md->format_minor);
	cJSON_AddStringToObject(o, "url", url);
	cJSON_AddStringToObject(o, "format_version", fmt);
	cJSON_AddStringToObject(o, "save_id", md->save_id != NULL ? md->save_id : "");
	cJSON_AddStringToObject(o, "checksum_algorithm", DCP_CHECKSUM_ALGO);
	cJSON_AddNumberToObject(o, "checksum_block", (double)md->checksum_block);
	cJSON_AddNumberToObject(o, "tensors", (double)t.tensors);
	cJSON_AddNumberToObject(o, "bytes_items", (double)t.bytes_items);
	cJSON_AddNumberToObject(o, "chunks", (double)t.chunks);
	cJSON_AddNumberToObject(o, "stored_bytes", (double)t.stored_bytes);
	cJSON *items = cJSON_AddArrayToObject(o, "items");
	for (size_t i = 0; items != NULL && i < md->nitems; i++) {
		const dcp_md_item *it = &md->items[i];
		cJSON *j = cJSON_CreateObject();
		if (j == NULL)
			break;
		cJSON_AddItemToArray(items, j);
		cJSON_AddStringToObject(j, "key", it->key);
		cJSON_AddStringToObject(j, "type", it->type == DCP_ITEM_TENSOR ? "tensor" : "bytes");
		if (it->type == DCP_ITEM_TENSOR) {
			cJSON_AddStringToObject(j, "dtype", dcp_dtype_name(it->dtype));
			cJSON_AddItemToObject(j, "shape", u64_array(it->shape, it->ndim));
		}
		cJSON *chunks = cJSON_AddArrayToObject(j, "chunks");
		for (size_t c = 0; chunks != NULL && c < it->nchunks; c++) {
			const dcp_md_chunk *ch = &it->chunks[c];
			const dcp_storage_info *s = &ch->storage;
			cJSON *k = cJSON_CreateObject();
			if (k == NULL)
				break;
			cJSON_AddItemToArray(chunks, k);
			if (it->type == DCP_ITEM_TENSOR) {
				cJSON_AddItemToObject(k, "offsets", u64_array(ch->offsets, it->ndim));
				cJSON_AddItemToObject(k, "sizes", u64_array(ch->sizes, it->ndim));
			}
			cJSON_AddStringToObject(k, "file", s->path != NULL ? s->path : "");
			cJSON_AddNumberToObject(k, "offset", (double)s->offset);
			cJSON_AddNumberToObject(k, "length", (double)s->length);
			cJSON *sums = cJSON_AddArrayToObject(k, "checksums");
			for (uint32_t m = 0; sums != NULL && m < s->nsums; m++) {
				char hex[20];
				snprintf(hex, sizeof(hex), "%016" PRIx64, s->sums[m]);
				cJSON_AddItemToArray(sums, cJSON_CreateString(hex));
			}
		}
	}
	cJSON *fa = cJSON_AddArrayToObject(o, "files");
	for (size_t i = 0; fa != NULL && i < nfiles; i++) {
		cJSON *f = cJSON_CreateObject();
		if (f == NULL)
			break;
		cJSON_AddItemToArray(fa, f);
		cJSON_AddStringToObject(f, "path", files[i].path);
		cJSON_AddNumberToObject(f, "bytes", (double)files[i].bytes);
		cJSON_AddNumberToObject(f, "chunks", (double)files[i].chunks);
	}
	if (md->storage_meta != NULL) {
		cJSON *sm = cJSON_Parse(md->storage_meta);
		if (sm != NULL)
			cJSON_AddItemToObject(o, "storage_meta", sm);
		else
			cJSON_AddStringToObject(o, "storage_meta", md->storage_meta);
	}
	char *text = cJSON_Print(o);
	cJSON_Delete(o);
	return text;
}

int cmd_inspect(int argc, char **argv)
{
	int json = 0, summary = 0;
	const arg_spec specs[] = {{"json", NULL, &json}, {"summary", NULL, &summary}, {NULL, NULL, NULL}};
	const char *pos[1];
	int npos = 0;
	int rc = args_parse("inspect", USAGE, argc, argv, specs, pos, 1, 1, &npos);
	if (rc >= 0)
		return rc;

	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	rc = dcp_read_metadata(pos[0], NULL, &md, &err);
	if (rc != DCP_OK) {
		int ex = tool_report_error("dcp inspect", rc, err);
		dcp_error_free(err);
		return ex;
	}
	file_entry *files = NULL;
	size_t nfiles = 0;
	int ex = TOOL_EXIT_OK;
	if (collect_files(md, &files, &nfiles) != DCP_OK) {
		fprintf(stderr, "dcp inspect: out of memory\n");
		ex = TOOL_EXIT_FAIL;
	} else if (json) {
		char *text = to_json(pos[0], md, files, nfiles);
		if (text == NULL) {
			fprintf(stderr, "dcp inspect: out of memory while printing JSON\n");
			ex = TOOL_EXIT_FAIL;
		} else {
			puts(text);
			cJSON_free(text);
		}
	} else {
		inspect_print_summary(stdout, pos[0], md);
		if (!summary)
			print_details(md, files, nfiles);
	}
	free(files);
	dcp_metadata_free(md);
	return ex;
}
