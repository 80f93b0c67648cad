#ifndef SPARSESERVE_STATUS_H
#define SPARSESERVE_STATUS_H

/// What a kernel call returns: 0, or why it did nothing (its outputs are then unspecified).
typedef enum {
    SS_OK = 0,
    SS_ERR_ARGUMENT = -1,   /* invalid sizes, ranges or formats */
    SS_ERR_NO_MEMORY = -2   /* a scratch buffer could not be allocated */
} ss_status;

/// A short English description of a status value ("ok", "invalid argument", "out of memory").
const char *ss_status_message(int status);

#endif
