// rendered_header: the Subject a backup file is named after, unfolded and decoded.
#include "message/rendered_header.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

TEST(RenderedHeader, TableOfCases) {
  struct Case {
    const char* message;
    const char* want;
  } cases[] = {
      {"Subject: Hello Ann\r\n\r\nbody", "Hello Ann"},
      {"From: a@b\nsubject:  lower case, LF \n\nbody", "lower case, LF"},
      {"Subject: folded\r\n  across lines\r\n\r\n", "folded  across lines"},
      {"Subject: =?UTF-8?B?w4lsb2TDrWU=?=\r\n\r\n",
       "\xC3\x89lod\xC3\xAD"
       "e"},
      {"Subject: Hi =?utf-8?q?J=C3=BCrgen_M?= =?utf-8?q?=C3=BCller?= !\r\n\r\n",
       "Hi J\xC3\xBCrgen M\xC3\xBCller !"},
      {"Subject: =?iso-8859-1?q?caf=E9?=\r\n\r\n", "caf\xC3\xA9"},
      {"Subject: =?koi8-r?b?8NLJ18XU?=\r\n\r\n", "=?koi8-r?b?8NLJ18XU?="},  // left as is
      {"Subject: =?utf-8?x?bad?=\r\n\r\n", "=?utf-8?x?bad?="},
      {"To: x@y\r\n\r\nSubject: in the body\r\n", ""},
      {"X-Subject: no\r\nSubject: yes\r\n\r\n", "yes"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(rendered_header(c.message, "Subject"), c.want) << c.message;
  }
}

}  // namespace
}  // namespace sb
