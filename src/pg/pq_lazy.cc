// libpq, opened on first use (base/lazy_lib.h): only the PostgreSQL store calls it.
// Each function smtpblast calls, under libpq's own name, forwards to libpq's.
#include <libpq-fe.h>

#include "base/lazy_lib.h"

namespace {
// libpq's soname has been libpq.so.5 since PostgreSQL 8.2.
constinit sb::LazyLib pq_lib("libpq.so.5");
}  // namespace

extern "C" {

void PQclear(PGresult *res) {
  SB_LAZY_REAL(pq_lib, PQclear);
  sb_real(res);
}

char *PQcmdTuples(PGresult *res) {
  SB_LAZY_REAL(pq_lib, PQcmdTuples);
  return sb_real(res);
}

PostgresPollingStatusType PQconnectPoll(PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQconnectPoll);
  return sb_real(conn);
}

PGconn *PQconnectStart(const char *conninfo) {
  SB_LAZY_REAL(pq_lib, PQconnectStart);
  return sb_real(conninfo);
}

PGconn *PQconnectdb(const char *conninfo) {
  SB_LAZY_REAL(pq_lib, PQconnectdb);
  return sb_real(conninfo);
}

void PQconninfoFree(PQconninfoOption *connOptions) {
  SB_LAZY_REAL(pq_lib, PQconninfoFree);
  sb_real(connOptions);
}

PQconninfoOption *PQconninfoParse(const char *conninfo, char **errmsg) {
  SB_LAZY_REAL(pq_lib, PQconninfoParse);
  return sb_real(conninfo, errmsg);
}

int PQconsumeInput(PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQconsumeInput);
  return sb_real(conn);
}

int PQenterPipelineMode(PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQenterPipelineMode);
  return sb_real(conn);
}

char *PQerrorMessage(const PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQerrorMessage);
  return sb_real(conn);
}

PGresult *PQexec(PGconn *conn, const char *query) {
  SB_LAZY_REAL(pq_lib, PQexec);
  return sb_real(conn, query);
}

PGresult *PQexecParams(PGconn *conn, const char *command, int nParams, const Oid *paramTypes,
                       const char *const *paramValues, const int *paramLengths,
                       const int *paramFormats, int resultFormat) {
  SB_LAZY_REAL(pq_lib, PQexecParams);
  return sb_real(conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats,
                 resultFormat);
}

void PQfinish(PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQfinish);
  sb_real(conn);
}

int PQflush(PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQflush);
  return sb_real(conn);
}

void PQfreemem(void *ptr) {
  SB_LAZY_REAL(pq_lib, PQfreemem);
  sb_real(ptr);
}

PGresult *PQgetResult(PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQgetResult);
  return sb_real(conn);
}

int PQgetisnull(const PGresult *res, int tup_num, int field_num) {
  SB_LAZY_REAL(pq_lib, PQgetisnull);
  return sb_real(res, tup_num, field_num);
}

int PQgetlength(const PGresult *res, int tup_num, int field_num) {
  SB_LAZY_REAL(pq_lib, PQgetlength);
  return sb_real(res, tup_num, field_num);
}

char *PQgetvalue(const PGresult *res, int tup_num, int field_num) {
  SB_LAZY_REAL(pq_lib, PQgetvalue);
  return sb_real(res, tup_num, field_num);
}

int PQisBusy(PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQisBusy);
  return sb_real(conn);
}

int PQnfields(const PGresult *res) {
  SB_LAZY_REAL(pq_lib, PQnfields);
  return sb_real(res);
}

int PQntuples(const PGresult *res) {
  SB_LAZY_REAL(pq_lib, PQntuples);
  return sb_real(res);
}

int PQpipelineSync(PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQpipelineSync);
  return sb_real(conn);
}

void PQreset(PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQreset);
  sb_real(conn);
}

char *PQresultErrorMessage(const PGresult *res) {
  SB_LAZY_REAL(pq_lib, PQresultErrorMessage);
  return sb_real(res);
}

ExecStatusType PQresultStatus(const PGresult *res) {
  SB_LAZY_REAL(pq_lib, PQresultStatus);
  return sb_real(res);
}

int PQsendQueryParams(PGconn *conn, const char *command, int nParams, const Oid *paramTypes,
                      const char *const *paramValues, const int *paramLengths,
                      const int *paramFormats, int resultFormat) {
  SB_LAZY_REAL(pq_lib, PQsendQueryParams);
  return sb_real(conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats,
                 resultFormat);
}

PQnoticeProcessor PQsetNoticeProcessor(PGconn *conn, PQnoticeProcessor proc, void *arg) {
  SB_LAZY_REAL(pq_lib, PQsetNoticeProcessor);
  return sb_real(conn, proc, arg);
}

int PQbackendPID(const PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQbackendPID);
  return sb_real(conn);
}

int PQsetnonblocking(PGconn *conn, int arg) {
  SB_LAZY_REAL(pq_lib, PQsetnonblocking);
  return sb_real(conn, arg);
}

int PQsocket(const PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQsocket);
  return sb_real(conn);
}

ConnStatusType PQstatus(const PGconn *conn) {
  SB_LAZY_REAL(pq_lib, PQstatus);
  return sb_real(conn);
}

}  // extern "C"
