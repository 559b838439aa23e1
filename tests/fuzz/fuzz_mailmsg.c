/*
 * fuzz_mailmsg.c - the header scanner, the address-list parser and the
 * address validator on arbitrary bytes.  Checks that every field lies
 * inside the input, that Bcc removal only shrinks the message and leaves
 * no Bcc field, and that every parsed address is a NUL-free string.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_mailmsg_addrs(const char *s, size_t len)
{
	struct mailmsg_addr_list l = { 0 };
	struct sq_err            err = { 0 };
	size_t                   i;

	if (mailmsg_addr_list_parse(&l, s, len, &err) != 0) {
		if (err.code != SQ_EPARSE || l.n != 0)
			abort();
		return;
	}
	for (i = 0; i < l.n; i++) {
		if (strlen(l.addrs[i]) == 0 || strlen(l.addrs[i]) > len)
			abort();
		(void)mailmsg_addr_valid(l.addrs[i], MAILMSG_ADDR_UNQUALIFIED,
		    &err);
	}
	mailmsg_addr_list_fini(&l);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mailmsg_header       h;
	struct sq_err               err = { 0 };
	const struct mailmsg_field *f;
	char                       *msg, *str;
	size_t                      i, n;

	msg = malloc(size ? size : 1);
	memcpy(msg, data, size);
	mailmsg_scan(msg, size, &h);
	if (h.header_len > size || h.body_off > size ||
	    h.body_off < h.header_len)
		abort();
	for (i = 0; i < h.n_fields; i++) {
		f = &h.fields[i];
		if (f->off + f->len > h.header_len || f->name_len == 0 ||
		    f->value_off + f->value_len > f->off + f->len ||
		    f->value_off <= f->off + f->name_len)
			abort();
		fuzz_mailmsg_addrs(msg + f->value_off, f->value_len);
	}
	(void)mailmsg_find(&h, msg, "bcc", 0);
	mailmsg_header_fini(&h);

	n = mailmsg_remove_fields(msg, size, "Bcc");
	if (n > size)
		abort();
	mailmsg_scan(msg, n, &h);
	if (mailmsg_find(&h, msg, "bcc", 0) != -1)
		abort();
	mailmsg_header_fini(&h);
	free(msg);

	/* The whole input as one recipient argument / address. */
	fuzz_mailmsg_addrs((const char *)data, size);
	str = malloc(size + 1);
	memcpy(str, data, size);
	str[size] = '\0';
	(void)mailmsg_addr_valid(str, 0, &err);
	/* The host rule on the raw bytes (it must read only size of them)
	 * and on the string, with each flag. */
	(void)mailmsg_host_valid((const char *)data, size, 0);
	(void)mailmsg_host_valid(str, strlen(str),
	    MAILMSG_HOST_UTF8 | MAILMSG_HOST_LITERAL);
	free(str);
	return 0;
}
