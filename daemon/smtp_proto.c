/* smtp_proto.c - under construction */
#include "util.h"
