/* Error codes: the one convention of the C core. A function that can fail returns 0 on
 * success or one of these negative codes; it never returns -1 "when good" or a positive
 * error. Functions that return a count or a pointer say so in their header; where a count
 * can also fail, the failure is a negative GW_E* value of a signed type.
 *
 * Asynchronous operations (the broker and history seams: broker.h, history.h) use the same
 * codes twice: the call returns a code when the request was refused before it started (the
 * callback then never runs), and the callback gets a status for what happened later.
 *
 * Debt (issue 13): many older functions still return a bare -1 for "failed", which is also
 * GW_ENOMEM's value; they are converted by the restructuring. Until then, give gw_strerror()
 * only results documented as GW_E* codes. */
#ifndef GW_ERRORS_H
#define GW_ERRORS_H

enum {
  GW_OK = 0,
  GW_ENOMEM = -1,
  GW_EINVAL = -2,     /* bad argument or value */
  GW_ECLOSED = -3,    /* the connection is gone or closing */
  GW_ELIMIT = -4,     /* a configured limit was reached */
  GW_EEXIST = -5,
  GW_ENOENT = -6,
  GW_EIO = -7,
  GW_EPOLICY = -8,    /* the policy failed to load or a hook failed */
  GW_EUNAVAIL = -9,   /* a backend (broker, history store) is down or not connected yet */
  GW_ETIMEDOUT = -10, /* an asynchronous request got no answer in time */
  GW_ECANCELED = -11, /* the backend was closed with the request still pending */
  GW_EAUTH = -12,     /* a backend refused our credentials (Redis AUTH, NOAUTH, WRONGPASS) */
};

/* A short English description of a GW_E* code ("out of memory"), for logs and error
 * messages; never NULL. Unknown values give "unknown error". */
static inline const char *gw_strerror(int code) {
  switch (code) {
    case GW_OK: return "success";
    case GW_ENOMEM: return "out of memory";
    case GW_EINVAL: return "invalid argument";
    case GW_ECLOSED: return "connection closed";
    case GW_ELIMIT: return "limit reached";
    case GW_EEXIST: return "already exists";
    case GW_ENOENT: return "not found";
    case GW_EIO: return "input/output error";
    case GW_EPOLICY: return "policy error";
    case GW_EUNAVAIL: return "backend unavailable";
    case GW_ETIMEDOUT: return "timed out";
    case GW_ECANCELED: return "canceled";
    case GW_EAUTH: return "authentication failed";
    default: return "unknown error";
  }
}

#endif
