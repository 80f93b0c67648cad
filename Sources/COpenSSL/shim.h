#ifndef SPARSESERVE_COPENSSL_SHIM_H
#define SPARSESERVE_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <string.h>
/* Wrappers for OpenSSL macros (and macro-built constants) that Swift cannot import. */

static inline long cssl_ctx_set_min_tls12(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
static inline long cssl_ctx_set_min_proto(SSL_CTX *ctx, int version) {
    return SSL_CTX_set_min_proto_version(ctx, version);
}
static inline long cssl_ctx_set_max_proto(SSL_CTX *ctx, int version) {
    return SSL_CTX_set_max_proto_version(ctx, version);
}
/* No TLS compression (CRIME), no renegotiation, server cipher order; an EOF without close_notify
   reads as an orderly end (HTTP framing, not TLS, tells whether a message is complete). */
static inline long cssl_ctx_set_options_defaults(SSL_CTX *ctx) {
    return (long)SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                                          | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
}
static inline long cssl_ctx_set_partial_write(SSL_CTX *ctx) {
    return SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}
static inline size_t cssl_bio_pending(BIO *b) { return (size_t)BIO_ctrl_pending(b); }

/* ALPN: pick "http/1.1" when the client offers it (curl offers h2 first); otherwise no ALPN. */
static int cssl_alpn_select_http11(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                   const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl; (void)arg;
    unsigned int i = 0;
    while (i < inlen) {
        unsigned int len = in[i];
        if (i + 1 + len > inlen) break;
        if (len == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)len;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}
static inline void cssl_ctx_alpn_http11(SSL_CTX *ctx) {
    SSL_CTX_set_alpn_select_cb(ctx, cssl_alpn_select_http11, NULL);
}

/* Whether a queued OpenSSL error says the peer sent a plaintext HTTP request (or proxy CONNECT). */
static inline int cssl_err_is_http_request(unsigned long code) {
    return ERR_GET_LIB(code) == ERR_LIB_SSL
        && (ERR_GET_REASON(code) == SSL_R_HTTP_REQUEST || ERR_GET_REASON(code) == SSL_R_HTTPS_PROXY_REQUEST);
}

/* Client side (tests): SNI. */
static inline long cssl_set_sni(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}
#endif
