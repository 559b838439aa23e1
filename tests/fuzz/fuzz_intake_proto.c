/*
 * fuzz_intake_proto.c - the input as everything a client says, fed to a
 * server session in varying chunk sizes, with the driver's answers
 * varied too.
 *
 * Input: byte 0 = mode (bits 0-1: greeting GREET / DENY / BUSY / GREET;
 * bits 2-4: chunk size seed; bit 5: the guards: a junk command limit of
 * 8, and refusals through data_refuse() (reserve, per-user limit)
 * instead of data_start(0) / a failed commit; bit 6: the spool refuses
 * DATA; bit 7: the commit fails), then the client's bytes.  Limits are small (SIZE 4096,
 * 3 recipients) so the fuzzer reaches them.
 *
 * Checked: events come only in a legal order (BODY only inside DATA,
 * END only after DATA, nothing after CLOSE), the stored message never
 * exceeds the limit, no CR is ever stored (every line ending becomes
 * LF), the output stays bounded, and every byte is eventually
 * taken or the session closed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "intake_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_INTAKE_MAX_SIZE 4096

struct fuzz_intake {
	struct intake_proto *p;
	int                  in_data;
	int                  closed;
	int                  refuse_data;
	int                  fail_commit;
	int                  guards;
	uint64_t             stored;
};

static void
fuzz_intake_events(struct fuzz_intake *f)
{
	struct intake_proto_event ev;
	const char               *out;
	size_t                    len, i;

	while (intake_proto_next_event(f->p, &ev)) {
		if (f->closed)
			abort();
		switch (ev.type) {
		case INTAKE_PROTO_EV_DATA:
			if (f->in_data)
				abort();
			f->stored = 0;
			if (f->refuse_data && f->guards)
				intake_proto_data_refuse(f->p,
				    "uid 1 has 2 messages queued\r\n");
			else if (f->refuse_data)
				intake_proto_data_start(f->p, 0);
			else {
				intake_proto_data_start(f->p, 1);
				f->in_data = 1;
			}
			break;
		case INTAKE_PROTO_EV_BODY:
			if (!f->in_data || ev.len == 0)
				abort();
			for (i = 0; i < ev.len; i++)
				if (ev.data[i] == '\r')
					abort();
			f->stored += ev.len;
			if (f->stored > FUZZ_INTAKE_MAX_SIZE)
				abort();
			break;
		case INTAKE_PROTO_EV_ABORT:
			if (!f->in_data)
				abort();
			f->in_data = 0;
			break;
		case INTAKE_PROTO_EV_END:
			if (!f->in_data)
				abort();
			f->in_data = 0;
			if (f->fail_commit && f->guards)
				intake_proto_data_refuse(f->p,
				    "over the limit");
			else
				intake_proto_data_done(f->p,
				    f->fail_commit ? INTAKE_PROTO_NOSPACE :
						     INTAKE_PROTO_QUEUED,
				    "Q1");
			break;
		case INTAKE_PROTO_EV_CLOSE:
			f->closed = 1;
			break;
		}
	}
	intake_proto_output(f->p, &out, &len);
	if (len > INTAKE_PROTO_OUT_MAX)
		abort();
	intake_proto_consumed(f->p, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t        chunks[] = { 0, 1, 2, 3, 7, 16, 61, 512 };
	struct intake_proto_params params = {
		.hostname = "fuzz.test",
		.max_message_size = FUZZ_INTAKE_MAX_SIZE,
		.max_recipients = 3,
	};
	struct fuzz_intake f;
	size_t             off = 0, chunk, n, used;
	uint8_t            mode;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	switch (mode & 3) {
	case 1:
		params.greeting = INTAKE_PROTO_DENY;
		break;
	case 2:
		params.greeting = INTAKE_PROTO_BUSY;
		break;
	default:
		params.greeting = INTAKE_PROTO_GREET;
		break;
	}
	memset(&f, 0, sizeof(f));
	f.refuse_data = (mode & 0x40) != 0;
	f.fail_commit = (mode & 0x80) != 0;
	f.guards = (mode & 0x20) != 0;
	params.max_junk_commands = f.guards ? 8 : 0;
	chunk = chunks[(mode >> 2) & 7];
	f.p = intake_proto_new(&params);
	fuzz_intake_events(&f);
	while (off < size && !f.closed) {
		n = chunk == 0 || size - off < chunk ? size - off : chunk;
		used = intake_proto_feed(f.p, data + off, n);
		off += used;
		fuzz_intake_events(&f);
		if (used == 0) {
			/* After draining output and events it must move. */
			used = intake_proto_feed(f.p, data + off, n);
			off += used;
			fuzz_intake_events(&f);
			if (used == 0 && !f.closed && !intake_proto_closed(f.p))
				abort();
		}
	}
	if ((mode & 0x3c) == 0x3c)
		intake_proto_timeout(f.p);
	fuzz_intake_events(&f);
	intake_proto_free(f.p);
	return 0;
}
