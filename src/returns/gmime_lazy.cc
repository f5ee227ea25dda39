// GMime (and the few GLib/GObject calls its use needs), opened on first use
// (base/lazy_lib.h): only `returns` parses MIME. Each function smtpblast calls, under its own
// name, forwards to the library's; GLib's and GObject's come in with GMime, so one handle
// finds them.
#include <gmime/gmime.h>

#include "base/lazy_lib.h"

namespace {
constinit sb::LazyLib gmime_lib("libgmime-3.0.so.0");
}  // namespace

extern "C" {

gint g_ascii_strcasecmp(const gchar *s1, const gchar *s2) {
  SB_LAZY_REAL(gmime_lib, g_ascii_strcasecmp);
  return sb_real(s1, s2);
}

gboolean g_mime_content_type_is_type(GMimeContentType *content_type, const char *type,
                                     const char *subtype) {
  SB_LAZY_REAL(gmime_lib, g_mime_content_type_is_type);
  return sb_real(content_type, type, subtype);
}

ssize_t g_mime_data_wrapper_write_to_stream(GMimeDataWrapper *wrapper, GMimeStream *stream) {
  SB_LAZY_REAL(gmime_lib, g_mime_data_wrapper_write_to_stream);
  return sb_real(wrapper, stream);
}

const char *g_mime_header_get_name(GMimeHeader *header) {
  SB_LAZY_REAL(gmime_lib, g_mime_header_get_name);
  return sb_real(header);
}

const char *g_mime_header_get_value(GMimeHeader *header) {
  SB_LAZY_REAL(gmime_lib, g_mime_header_get_value);
  return sb_real(header);
}

int g_mime_header_list_get_count(GMimeHeaderList *headers) {
  SB_LAZY_REAL(gmime_lib, g_mime_header_list_get_count);
  return sb_real(headers);
}

GMimeHeader *g_mime_header_list_get_header_at(GMimeHeaderList *headers, int index) {
  SB_LAZY_REAL(gmime_lib, g_mime_header_list_get_header_at);
  return sb_real(headers, index);
}

void g_mime_init(void) {
  SB_LAZY_REAL(gmime_lib, g_mime_init);
  sb_real();
}

GMimeObject *g_mime_message_get_mime_part(GMimeMessage *message) {
  SB_LAZY_REAL(gmime_lib, g_mime_message_get_mime_part);
  return sb_real(message);
}

const char *g_mime_message_get_subject(GMimeMessage *message) {
  SB_LAZY_REAL(gmime_lib, g_mime_message_get_subject);
  return sb_real(message);
}

GMimeMessage *g_mime_message_part_get_message(GMimeMessagePart *part) {
  SB_LAZY_REAL(gmime_lib, g_mime_message_part_get_message);
  return sb_real(part);
}

GType g_mime_message_part_get_type(void) {
  SB_LAZY_REAL(gmime_lib, g_mime_message_part_get_type);
  return sb_real();
}

int g_mime_multipart_get_count(GMimeMultipart *multipart) {
  SB_LAZY_REAL(gmime_lib, g_mime_multipart_get_count);
  return sb_real(multipart);
}

GMimeObject *g_mime_multipart_get_part(GMimeMultipart *multipart, int index) {
  SB_LAZY_REAL(gmime_lib, g_mime_multipart_get_part);
  return sb_real(multipart, index);
}

GType g_mime_multipart_get_type(void) {
  SB_LAZY_REAL(gmime_lib, g_mime_multipart_get_type);
  return sb_real();
}

GMimeContentType *g_mime_object_get_content_type(GMimeObject *object) {
  SB_LAZY_REAL(gmime_lib, g_mime_object_get_content_type);
  return sb_real(object);
}

const char *g_mime_object_get_header(GMimeObject *object, const char *header) {
  SB_LAZY_REAL(gmime_lib, g_mime_object_get_header);
  return sb_real(object, header);
}

GMimeHeaderList *g_mime_object_get_header_list(GMimeObject *object) {
  SB_LAZY_REAL(gmime_lib, g_mime_object_get_header_list);
  return sb_real(object);
}

GType g_mime_object_get_type(void) {
  SB_LAZY_REAL(gmime_lib, g_mime_object_get_type);
  return sb_real();
}

GMimeMessage *g_mime_parser_construct_message(GMimeParser *parser, GMimeParserOptions *options) {
  SB_LAZY_REAL(gmime_lib, g_mime_parser_construct_message);
  return sb_real(parser, options);
}

GMimeParser *g_mime_parser_new_with_stream(GMimeStream *stream) {
  SB_LAZY_REAL(gmime_lib, g_mime_parser_new_with_stream);
  return sb_real(stream);
}

void g_mime_parser_set_format(GMimeParser *parser, GMimeFormat format) {
  SB_LAZY_REAL(gmime_lib, g_mime_parser_set_format);
  sb_real(parser, format);
}

GMimeDataWrapper *g_mime_part_get_content(GMimePart *mime_part) {
  SB_LAZY_REAL(gmime_lib, g_mime_part_get_content);
  return sb_real(mime_part);
}

GType g_mime_part_get_type(void) {
  SB_LAZY_REAL(gmime_lib, g_mime_part_get_type);
  return sb_real();
}

GByteArray *g_mime_stream_mem_get_byte_array(GMimeStreamMem *mem) {
  SB_LAZY_REAL(gmime_lib, g_mime_stream_mem_get_byte_array);
  return sb_real(mem);
}

GType g_mime_stream_mem_get_type(void) {
  SB_LAZY_REAL(gmime_lib, g_mime_stream_mem_get_type);
  return sb_real();
}

GMimeStream *g_mime_stream_mem_new(void) {
  SB_LAZY_REAL(gmime_lib, g_mime_stream_mem_new);
  return sb_real();
}

GMimeStream *g_mime_stream_mem_new_with_buffer(const char *buffer, size_t len) {
  SB_LAZY_REAL(gmime_lib, g_mime_stream_mem_new_with_buffer);
  return sb_real(buffer, len);
}

void g_object_unref(gpointer object) {
  SB_LAZY_REAL(gmime_lib, g_object_unref);
  sb_real(object);
}

GTypeInstance *g_type_check_instance_cast(GTypeInstance *instance, GType iface_type) {
  SB_LAZY_REAL(gmime_lib, g_type_check_instance_cast);
  return sb_real(instance, iface_type);
}

gboolean g_type_check_instance_is_a(GTypeInstance *instance, GType iface_type) {
  SB_LAZY_REAL(gmime_lib, g_type_check_instance_is_a);
  return sb_real(instance, iface_type);
}

}  // extern "C"
