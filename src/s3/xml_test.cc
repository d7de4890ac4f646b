#include "s3/xml.h"

#include <gtest/gtest.h>

#include "s3/client.h"
#include "s3/error.h"

namespace berth::s3 {
namespace {

TEST(Xml, ReadsElementsTextAndRoot) {
  const std::string doc =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Prefix>a/</Prefix><NextContinuationToken>t&amp;1</NextContinuationToken>"
      "<Contents><Key>a/1 &lt;x&gt;</Key><Size>3</Size></Contents><Contents><Key>a/&#x1234;&#65;</Key></Contents>"
      "<Empty/><IsTruncated>true</IsTruncated></ListBucketResult>";
  EXPECT_EQ(xml::root(doc), "ListBucketResult");
  EXPECT_EQ(xml::text(doc, "Prefix"), "a/");
  EXPECT_EQ(xml::text(doc, "NextContinuationToken"), "t&1");
  EXPECT_EQ(xml::text(doc, "ContinuationToken"), std::nullopt);  // not the Next... one
  EXPECT_EQ(xml::text(doc, "Empty"), "");
  const auto contents = xml::elements(doc, "Contents");
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_EQ(xml::text(contents[0], "Key"), "a/1 <x>");
  EXPECT_EQ(xml::text(contents[1], "Key"), "a/\xe1\x88\xb4" "A");
  EXPECT_EQ(xml::text(contents[1], "Size"), std::nullopt);
}

TEST(Xml, ToleratesMalformedInput) {
  EXPECT_EQ(xml::text("<Key>unterminated", "Key"), std::nullopt);
  EXPECT_EQ(xml::text("<Key", "Key"), std::nullopt);
  EXPECT_EQ(xml::text("<Key>&bogus; &#xZZ; & &#99999999;</Key>", "Key"), "&bogus; &#xZZ; & &#99999999;");
  EXPECT_EQ(xml::root(""), "");
  EXPECT_TRUE(xml::elements("<Part>", "Part").empty());
  EXPECT_EQ(xml::escape("a<b>&\"c\""), "a&lt;b&gt;&amp;\"c\"");
}

TEST(S3Error, MapsStatusAndCode) {
  const auto not_found = error_from_response("GET b/k", 404,
                                             "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>");
  EXPECT_EQ(not_found.code, errc::not_found);
  EXPECT_EQ(not_found.s3_code, "NoSuchKey");
  EXPECT_EQ(not_found.message, "GET b/k: 404 NoSuchKey (gone)");
  EXPECT_FALSE(retryable(not_found));
  EXPECT_EQ(error_from_response("HEAD b/k", 404, "").code, errc::not_found);
  EXPECT_EQ(error_from_response("x", 403, "<Error><Code>SignatureDoesNotMatch</Code></Error>").code, errc::denied);
  EXPECT_EQ(error_from_response("x", 416, "").code, errc::range_invalid);
  EXPECT_EQ(error_from_response("x", 412, "").code, errc::precondition_failed);
  EXPECT_EQ(error_from_response("x", 400, "<Error><Code>EntityTooSmall</Code></Error>").code, errc::invalid);
  const auto slow = error_from_response("x", 503, "<Error><Code>SlowDown</Code></Error>");
  EXPECT_EQ(slow.code, errc::throttled);
  EXPECT_TRUE(retryable(slow));
  EXPECT_TRUE(retryable(error_from_response("x", 400, "<Error><Code>RequestTimeout</Code></Error>")));
  EXPECT_TRUE(retryable(error_from_response("x", 502, "")));
  const auto in_200 = error_from_response("x", 200, "<Error><Code>InternalError</Code></Error>");
  EXPECT_EQ(in_200.code, errc::unavailable);
  EXPECT_EQ(in_200.status, 500);
}

TEST(S3Etag, Normalised) {
  EXPECT_EQ(normalize_etag("abc"), "\"abc\"");
  EXPECT_EQ(normalize_etag("\"abc\""), "\"abc\"");
  EXPECT_EQ(normalize_etag(" \"abc-2\" "), "\"abc-2\"");
}

}  // namespace
}  // namespace berth::s3
