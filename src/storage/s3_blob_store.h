// The S3 blob store: blob bytes, and the bytes of unfinished uploads, as objects in one bucket of
// any S3-compatible service (tested against Ceph RGW), under a key prefix. Every S3 call blocks
// (s3::client) and runs on the blocking pool; the I/O threads only suspend.
//
// Reads: open() GETs the first 64 KiB, which gives the size too (no HEAD), and the reader keeps
// them: a small blob is one request. Past them, ranged GETs of 2 MiB into the caller's buffer,
// those of one read at once; the server reads in pieces of 4 MiB (read_size()) and fetches the next
// while it sends the last. Or a presigned URL when redirect_downloads is on (open() is a HEAD then).
//
// Keys (docs/storage-layout.md):
//   <prefix>blobs/<algorithm>/<first 2 hex>/<hex>   a blob, stored once, only ever whole
//   <prefix>uploads/<id>/<offset, 20 digits>        a chunk of an unfinished upload
//   <prefix>probe/<random>                          the start-up check, deleted at once
//
// An upload is a run of chunk objects, each holding the upload's bytes from the offset in its name,
// so another instance finds the bytes from S3 alone, and read() reads back what was flushed. Every
// chunk but the last holds at least 5 MiB (S3's smallest part), at most 8 MiB: a handle fills a
// buffer and PUTs each full 8 MiB chunk in the background while the client keeps sending; flush()
// PUTs what the buffer holds under the same key, replacing the shorter chunk a previous flush wrote
// there, until that chunk reaches 5 MiB and the next one begins. create_upload() writes the empty
// chunk 0, so an upload exists as soon as it is created. Memory: at most two chunks per handle.
//
// commit(d) keeps an existing blob (dedup) or copies the chunks into place server side: one chunk
// with a CopyObject, more as a multipart upload of UploadPartCopy parts, one per chunk, four in
// flight at once (so a blob has at most 10,000 chunks: 50 GB at worst, 80 GB typically). Either is
// atomic: the blob's key shows nothing until the whole object does. Then the chunks are deleted; a failure before that
// leaves the upload as it was, a failure while deleting leaves garbage the purge removes.
//
// Thread-safety: as blob_store (blob_store.h). A handle dropped with a chunk PUT in flight lets it
// finish on the pool (the upload service flushes before it lets a handle go).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/offload.h"
#include "s3/client.h"
#include "storage/blob_store.h"

namespace berth::storage {

struct s3_blob_options {
  s3::config client;
  std::string prefix;  // prepended to every key, e.g. "berth/" ("berth" gets its '/'); "" for none
  // open() offers presigned GET URLs (blob_reader::redirect_url), valid this long.
  bool redirect_downloads = false;
  std::chrono::seconds redirect_expiry{20 * 60};
};

// The S3 store described by `options`; its S3 calls block a thread of `pool`, which must outlive
// the store and its handles. Throws std::runtime_error at start-up when the bucket cannot be
// written (it PUTs and deletes a probe object), naming the cause (endpoint unreachable, bucket
// missing, access denied) but never a credential; std::invalid_argument on a malformed endpoint,
// bucket or prefix.
std::unique_ptr<blob_store> make_s3_blob_store(s3_blob_options options, blocking_pool& pool);

}  // namespace berth::storage
