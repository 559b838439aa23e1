/*
 * spool_group.c - spool_set_queue_group (spool.h): the readers' group
 * looked up by name.  Apart from spool.c so that only the programs that
 * set the group (sendqd) link the look-up: sendq links the spool too, and
 * a static sendq must carry no NSS call (SENDQ_STATIC_INJECTOR).
 */
#include "spool.h"
#include "util.h"

int
spool_set_queue_group(struct spool *sp, const char *group, struct sq_err *err)
{
	gid_t gid = (gid_t)-1;

	/* In a child: a name /etc/group lacks would leave NSS modules
	 * mapped in sendqd (sq_group_gid). */
	if (group != NULL && group[0] != '\0' && sq_group_gid(group, &gid) != 0)
		gid = (gid_t)-1;
	return spool_set_queue_gid(sp, group, gid, err);
}
