/*
 * The collectives of dcp/sys/comm.h over an MPI communicator: the dcp_comm
 * object (dcp_comm_mpi_create and its options, the rank, size and destroy
 * slots) and the accessors of dcp/dcp_mpi.h. The collectives are in
 * mpi_collectives.c, the transfers they are built from in mpi_transport.c;
 * mpi_internal.h describes the design.
 *
 * A comm is used by one thread at a time (the rank's thread), like every comm.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_internal.h"

/* ------------------------------------------------------------------------ */
/* The comm slots                                                           */
/* ------------------------------------------------------------------------ */

static int mc_rank(const dcp_comm *self)
{
	return ((const mc_comm *)self)->rank;
}

static int mc_size(const dcp_comm *self)
{
	return ((const mc_comm *)self)->size;
}

static void mc_destroy(dcp_comm *self)
{
	mc_comm *c = (mc_comm *)self;
	int finalized = 0;
	MPI_Finalized(&finalized);
	if (!finalized) {
		dcp_mc_orphans_reap(c);
		MPI_Comm_free(&c->comm);
	}
	/* Orphans left now have sends that a lost peer never took: their
	 * buffers are leaked on purpose (see mpi_internal.h). */
	free(c);
}

/* ------------------------------------------------------------------------ */
/* Construction                                                             */
/* ------------------------------------------------------------------------ */

static int msg_set(char *msg, size_t msglen, int code, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 4, 5)))
#endif
        ;

static int msg_set(char *msg, size_t msglen, int code, const char *fmt, ...)
{
	if (msg != NULL && msglen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Reads $DCP_MPI_TIMEOUT: 1 and *out if set and valid, 0 if unset, -1 if
 * invalid. */
static int timeout_from_env(double *out)
{
	const char *s = getenv("DCP_MPI_TIMEOUT");
	if (s == NULL || *s == '\0')
		return 0;
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	while (end != NULL && (*end == ' ' || *end == '\t'))
		end++;
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0)
		return -1;
	*out = v;
	return 1;
}

int dcp_comm_mpi_create(MPI_Comm comm, const dcp_mpi_options *opts, dcp_comm **out, char *msg, size_t msglen)
{
	dcp_mpi_options defaults = DCP_MPI_OPTIONS_INIT;
	int inited = 0, finalized = 0, inter = 0;

	if (msg != NULL && msglen > 0)
		msg[0] = '\0';
	if (out == NULL)
		return msg_set(msg, msglen, DCP_EINVAL, "dcp_comm_mpi_create: out is NULL");
	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	if (opts->version != DCP_MPI_OPTIONS_VERSION)
		return msg_set(
		        msg, msglen, DCP_EINVAL,
		        "dcp_mpi_options.version is %u, this libdcp_mpi knows %u: initialise the options "
		        "with DCP_MPI_OPTIONS_INIT",
		        opts->version, DCP_MPI_OPTIONS_VERSION);
	if (opts->piece_bytes > DCP_MPI_DEFAULT_PIECE_BYTES)
		return msg_set(msg, msglen, DCP_EINVAL,
		               "dcp_mpi_options.piece_bytes is %zu, more than 2^30: MPI counts are ints",
		               opts->piece_bytes);
	if (isnan(opts->timeout_s) || isinf(opts->timeout_s))
		return msg_set(msg, msglen, DCP_EINVAL,
		               "dcp_mpi_options.timeout_s is not a number of seconds (0 for no timeout, "
		               "negative for $DCP_MPI_TIMEOUT)");
	if (MPI_Initialized(&inited) != MPI_SUCCESS || !inited || MPI_Finalized(&finalized) != MPI_SUCCESS ||
	    finalized)
		return msg_set(msg, msglen, DCP_EINVAL,
		               "MPI is not initialised (or already finalised): call MPI_Init before "
		               "dcp_comm_mpi_new");
	if (comm == MPI_COMM_NULL)
		return msg_set(msg, msglen, DCP_EINVAL, "the communicator is MPI_COMM_NULL");
	if (MPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS || inter)
		return msg_set(msg, msglen, DCP_EINVAL,
		               "the communicator is an intercommunicator; libdcp needs an intracommunicator");

	double timeout = opts->timeout_s;
	const char *from = "the option dcp_mpi_options.timeout_s";
	if (timeout < 0) {
		int e = timeout_from_env(&timeout);
		if (e < 0)
			return msg_set(msg, msglen, DCP_EINVAL,
			               "DCP_MPI_TIMEOUT='%s' is not a number of seconds >= 0 (0: no timeout)",
			               getenv("DCP_MPI_TIMEOUT"));
		from = e > 0 ? "DCP_MPI_TIMEOUT" : "the default";
		if (e == 0)
			timeout = DCP_MPI_DEFAULT_TIMEOUT;
	}

	mc_comm *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return msg_set(msg, msglen, DCP_ENOMEM, "out of memory");
	int mrc = MPI_Comm_dup(comm, &c->comm);
	if (mrc != MPI_SUCCESS) {
		free(c);
		char s[MPI_MAX_ERROR_STRING];
		int len = 0;
		if (MPI_Error_string(mrc, s, &len) != MPI_SUCCESS)
			snprintf(s, sizeof(s), "MPI error %d", mrc);
		return msg_set(msg, msglen, DCP_ECOMM, "MPI_Comm_dup failed: %s", s);
	}
	/* Failures of libdcp's messages come back as statuses, not aborts. */
	MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
	MPI_Comm_rank(c->comm, &c->rank);
	MPI_Comm_size(c->comm, &c->size);
	c->timeout = timeout;
	c->timeout_from = from;
	c->from_option = opts->timeout_s >= 0;
	c->piece = opts->piece_bytes > 0 ? opts->piece_bytes : DCP_MPI_DEFAULT_PIECE_BYTES;
	c->base.version = DCP_COMM_VERSION;
	c->base.rank = mc_rank;
	c->base.size = mc_size;
	c->base.gather = dcp_mc_gather;
	c->base.scatter = dcp_mc_scatter;
	c->base.broadcast = dcp_mc_broadcast;
	c->base.allgather = dcp_mc_allgather;
	c->base.barrier = dcp_mc_barrier;
	c->base.destroy = mc_destroy;
	*out = &c->base;
	return DCP_OK;
}

dcp_comm *dcp_comm_mpi_new(MPI_Comm comm, const dcp_mpi_options *opts)
{
	dcp_comm *out = NULL;
	dcp_comm_mpi_create(comm, opts, &out, NULL, 0);
	return out;
}

static const mc_comm *as_mpi(const dcp_comm *comm)
{
	if (comm == NULL || comm->destroy != mc_destroy)
		return NULL;
	return (const mc_comm *)comm;
}

double dcp_comm_mpi_timeout(const dcp_comm *comm)
{
	const mc_comm *c = as_mpi(comm);
	return c != NULL ? c->timeout : -1.0;
}

const char *dcp_comm_mpi_last_error(const dcp_comm *comm)
{
	const mc_comm *c = as_mpi(comm);
	return c != NULL ? c->last_error : "";
}

MPI_Comm dcp_comm_mpi_handle(const dcp_comm *comm)
{
	const mc_comm *c = as_mpi(comm);
	return c != NULL ? c->comm : MPI_COMM_NULL;
}
