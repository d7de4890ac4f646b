// The server through real sockets: a server on 127.0.0.1:0 whose io_context runs on two background
// threads, and small blocking Beast clients. Also request's own helpers, with a fake body source.
#include "http/server.h"
#include "http/client.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

namespace berth::http {
namespace {

namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using client_response = bhttp::response<bhttp::string_body>;

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
  return s;
}

// A blocking client on its own io_context.
class client {
 public:
  explicit client(const tcp::endpoint& ep) { socket_.connect(ep); }
  // From another loopback address (127.0.0.2, ...), for the per-address cap.
  client(const tcp::endpoint& ep, const char* source) {
    socket_.open(tcp::v4());
    socket_.bind(tcp::endpoint(asio::ip::make_address(source), 0));
    socket_.connect(ep);
  }

  // With a receive buffer of `receive_buffer` bytes (set before connecting: no autotuning), so
  // that the server's writes stall once a few KiB are unread.
  client(const tcp::endpoint& ep, int receive_buffer) {
    socket_.open(tcp::v4());
    socket_.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
    socket_.connect(ep);
  }

  void send(std::string_view raw) { asio::write(socket_, asio::buffer(raw.data(), raw.size())); }

  client_response read(bool head = false) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    parser.skip(head);
    bhttp::read(socket_, buffer_, parser);
    return parser.release();
  }

  client_response request(bhttp::verb method, std::string_view target, std::string body = {}) {
    bhttp::request<bhttp::string_body> req(method, target, 11, std::move(body));
    req.set(bhttp::field::host, "test");
    req.prepare_payload();
    bhttp::write(socket_, req);
    return read(method == bhttp::verb::head);
  }

  // Reads until the server closes; returns what arrived (after anything already buffered).
  std::string read_to_end() {
    std::string out = beast::buffers_to_string(buffer_.data());
    buffer_.clear();
    char chunk[4096];
    boost::system::error_code ec;
    for (;;) {
      std::size_t n = socket_.read_some(asio::buffer(chunk), ec);
      if (ec) break;
      out.append(chunk, n);
    }
    return out;
  }

  // True when the server closed the connection (a clean EOF or a reset).
  bool closed_by_server() { return read_to_end().empty(); }

 private:
  asio::io_context ioc_;
  tcp::socket socket_{ioc_};
  beast::flat_buffer buffer_;
};

class temp_file {
 public:
  explicit temp_file(const std::string& contents) {
    path_ = std::filesystem::temp_directory_path() /
            ("berth_http_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    std::ofstream(path_, std::ios::binary) << contents;
  }
  ~temp_file() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  static inline std::atomic<int> counter_{0};
  std::filesystem::path path_;
};

response throwing() { throw std::runtime_error("handler bug"); }

response text(std::string body, unsigned status = 200) {
  response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

class ServerTest : public ::testing::Test {
 protected:
  void TearDown() override { stop(1s); }

  // `run`: false leaves the io_context idle until run_threads(), so connections wait in the backlog.
  void start(server_options options = {}, bool run = true) {
    options.listen = "127.0.0.1:0";
    server_ = std::make_unique<server>(ioc_, std::move(options), [this](request& req) { return handle(req); });
    endpoint_ = server_->listen();
    server_->start();
    if (run) run_threads();
  }

  void run_threads() {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }

  // Shuts down and waits until every io_context thread has returned from run().
  void stop(std::chrono::milliseconds grace) {
    if (!server_) return;
    server_->shutdown(grace);
    for (auto& t : threads_) t.join();
    threads_.clear();
    server_.reset();
  }

  // The test application: routes on the path.
  asio::awaitable<response> handle(request& req) {
    std::string_view path = req.path();
    if (path == "/hello") co_return text("hello " + req.query("name").value_or("?"));
    if (path == "/echo") co_return co_await echo(req);
    if (path == "/manifest") co_return co_await manifest(req);
    if (path == "/file") co_return serve_file(req);
    if (path == "/pieces") co_return serve_pieces(req);
    if (path == "/head") {
      response r;
      r.head_length = 12345;
      co_return r;
    }
    if (path == "/reject") co_return text("go away", 401);
    if (path == "/throw") co_return throwing();
    if (path == "/slow") co_return co_await slow();
    if (path == "/stuck") {
      entered_.set_value();
      co_return co_await echo(req);
    }
    co_return text("not found", 404);
  }

  asio::awaitable<response> echo(request& req) {
    std::string received;
    std::size_t pieces = 0;
    std::size_t largest = 0;
    auto n = co_await req.stream_body([&](std::string_view piece) -> asio::awaitable<result<void>> {
      ++pieces;
      largest = std::max(largest, piece.size());
      received.append(piece);
      co_return result<void>{};
    });
    if (!n) co_return text(std::string(info(n.error().code).wire), static_cast<unsigned>(n.error().http_status()));
    response r = text(std::move(received));
    r.headers.set("X-Pieces", std::to_string(pieces));
    r.headers.set("X-Largest", std::to_string(largest));
    r.headers.set("X-Chunked", req.chunked() ? "yes" : "no");
    r.headers.set("X-Total", std::to_string(*n));
    co_return r;
  }

  asio::awaitable<response> manifest(request& req) {
    auto body = co_await req.read_body(16);
    if (!body)
      co_return text(std::string(info(body.error().code).wire), static_cast<unsigned>(body.error().http_status()));
    co_return text("got " + *body);
  }

  // A file's bytes, read through an open descriptor; ?fd=no hides the descriptor, so the server
  // must use read() even on plain TCP (as for a backend without files).
  class file_reader final : public body_reader {
   public:
    file_reader(int fd, bool offer_fd) : fd_(fd), offer_fd_(offer_fd) {}
    ~file_reader() override { ::close(fd_); }
    asio::awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) override {
      const ssize_t n = ::pread(fd_, buf.data(), buf.size(), static_cast<off_t>(offset));
      if (n < 0) co_return fail(errc::internal);
      co_return static_cast<std::size_t>(n);
    }
    int native_handle() const override { return offer_fd_ ? fd_ : -1; }

   private:
    int fd_;
    bool offer_fd_;
  };

  response serve_file(request& req) {
    int fd = ::open(req.query("path").value().c_str(), O_RDONLY | O_CLOEXEC);
    response r;
    r.stream = streamed_body{std::make_shared<file_reader>(fd, req.query("fd") != "no"),
                             std::stoull(req.query("offset").value()), std::stoull(req.query("length").value())};
    return r;
  }

  // pattern(size) read in pieces of `piece` bytes, each read suspending once (as a network read
  // would) and returning at most `most` bytes; a read at or past `fail_at` fails. Records what the
  // server asked for in reads_.
  class piece_reader final : public body_reader {
   public:
    struct record {
      std::mutex mutex;
      std::vector<std::pair<std::uint64_t, std::size_t>> reads;  // offset, buf.size()
      std::set<const char*> buffers;
      int in_flight = 0;
      int most_in_flight = 0;
      std::uint64_t signal_at = std::numeric_limits<std::uint64_t>::max();
      std::promise<void> reached;  // set when a read at signal_at starts
    };
    piece_reader(std::string contents, std::size_t piece, std::size_t most, std::uint64_t fail_at, record& r)
        : contents_(std::move(contents)), piece_(piece), most_(most), fail_at_(fail_at), record_(r) {}

    std::size_t read_size() const override { return piece_; }

    asio::awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) override {
      {
        std::lock_guard lock(record_.mutex);
        record_.reads.emplace_back(offset, buf.size());
        record_.buffers.insert(buf.data());
        record_.most_in_flight = std::max(record_.most_in_flight, ++record_.in_flight);
        if (offset == record_.signal_at) record_.reached.set_value();
      }
      auto ex = co_await asio::this_coro::executor;
      co_await asio::post(ex, asio::use_awaitable);
      {
        std::lock_guard lock(record_.mutex);
        --record_.in_flight;
      }
      if (offset >= fail_at_) co_return fail(errc::internal);
      if (offset >= contents_.size()) co_return 0;
      const std::size_t n = std::min({buf.size(), most_, contents_.size() - static_cast<std::size_t>(offset)});
      std::memcpy(buf.data(), contents_.data() + offset, n);
      co_return n;
    }

   private:
    std::string contents_;
    std::size_t piece_;
    std::size_t most_;
    std::uint64_t fail_at_;
    record& record_;
  };

  response serve_pieces(request& req) {
    auto number = [&](std::string_view key, std::uint64_t otherwise) {
      auto v = req.query(key);
      return v ? std::stoull(*v) : otherwise;
    };
    const auto size = number("size", 0);
    response r;
    r.stream = streamed_body{
        std::make_shared<piece_reader>(pattern(size), number("piece", 1000), number("most", size),
                                       number("fail_at", std::numeric_limits<std::uint64_t>::max()), pieces_),
        number("offset", 0), number("length", size)};
    return r;
  }

  // Waits on a timer the test cancels through gate_timer_, on the handler's own strand.
  asio::awaitable<response> slow() {
    asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
    gate_timer_ = &timer;
    entered_.set_value();
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return text("finished");
  }

  void release_slow_handler() {
    asio::post(gate_timer_->get_executor(), [t = gate_timer_] { t->cancel(); });
  }

  asio::io_context ioc_;
  std::unique_ptr<server> server_;
  std::vector<std::thread> threads_;
  tcp::endpoint endpoint_;
  std::promise<void> entered_;
  asio::steady_timer* gate_timer_ = nullptr;
  piece_reader::record pieces_;
};

TEST_F(ServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  start();
  client c(endpoint_);
  auto first = c.request(bhttp::verb::get, "/hello?name=a%20b+c&x=1");
  EXPECT_EQ(first.result_int(), 200);
  EXPECT_EQ(first.body(), "hello a b c");
  EXPECT_TRUE(first.keep_alive());
  EXPECT_EQ(first[bhttp::field::content_length], "11");
  auto second = c.request(bhttp::verb::get, "/hello?name=two");
  EXPECT_EQ(second.body(), "hello two");
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  client c(endpoint_);
  c.send("GET /hello?name=1 HTTP/1.1\r\nHost: t\r\n\r\nGET /hello?name=2 HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(c.read().body(), "hello 1");
  EXPECT_EQ(c.read().body(), "hello 2");
}

TEST_F(ServerTest, HeadSendsHeadLengthAndNoBody) {
  start();
  client c(endpoint_);
  auto head = c.request(bhttp::verb::head, "/head");
  EXPECT_EQ(head.result_int(), 200);
  EXPECT_EQ(head[bhttp::field::content_length], "12345");
  // A stray body byte would corrupt the next response on the connection.
  EXPECT_EQ(c.request(bhttp::verb::get, "/hello?name=after").body(), "hello after");
}

TEST_F(ServerTest, ContentLengthBodyIsStreamedInPiecesOfAtMostOneMiB) {
  start();
  client c(endpoint_);
  std::string body = pattern(3 * 1024 * 1024 + 17);
  auto res = c.request(bhttp::verb::post, "/echo", body);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_TRUE(res.body() == body);
  EXPECT_EQ(res["X-Chunked"], "no");
  EXPECT_EQ(res["X-Total"], std::to_string(body.size()));
  EXPECT_LE(std::stoul(std::string(res["X-Largest"])), body_source::scratch_size);
  EXPECT_GE(std::stoul(std::string(res["X-Pieces"])), 4u);
  EXPECT_TRUE(res.keep_alive());
}

TEST_F(ServerTest, ChunkedBodyIsStreamed) {
  start();
  client c(endpoint_);
  c.send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  auto res = c.read();
  EXPECT_EQ(res.body(), "hello world");
  EXPECT_EQ(res["X-Chunked"], "yes");
  EXPECT_EQ(c.request(bhttp::verb::get, "/hello?name=again").body(), "hello again");
}

TEST_F(ServerTest, BadChunkedFramingIsSizeInvalidAndCloses) {
  start();
  client c(endpoint_);
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n");
  auto res = c.read();
  EXPECT_EQ(res.body(), "SIZE_INVALID");
  EXPECT_FALSE(res.keep_alive());
}

TEST_F(ServerTest, ExpectContinueIsSentWhenTheHandlerReads) {
  start();
  client c(endpoint_);
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 100);  // the client sends nothing before this
  c.send("hello");
  auto res = c.read();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "hello");
}

TEST_F(ServerTest, ExpectContinueIsNotSentWhenTheHandlerDoesNotRead) {
  start();
  client c(endpoint_);
  c.send("PUT /reject HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  auto res = c.read();
  EXPECT_EQ(res.result_int(), 401);
  EXPECT_FALSE(res.keep_alive());  // the body was never read: the connection cannot be reused
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(ServerTest, ReadBodyWithinTheLimit) {
  start();
  client c(endpoint_);
  EXPECT_EQ(c.request(bhttp::verb::put, "/manifest", "0123456789abcdef").body(), "got 0123456789abcdef");
  c.send("PUT /manifest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(c.read().body(), "got abc");
}

TEST_F(ServerTest, ReadBodyPastTheLimitFailsAndCloses) {
  start();
  client c(endpoint_);
  auto res = c.request(bhttp::verb::put, "/manifest", std::string(100, 'x'));
  EXPECT_EQ(res.result_int(), 413);
  EXPECT_EQ(res.body(), "PAYLOAD_TOO_LARGE");  // http/ knows no manifests
  EXPECT_FALSE(res.keep_alive());

  client chunked(endpoint_);
  chunked.send(
      "PUT /manifest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.read().result_int(), 413);
}

TEST_F(ServerTest, FileSliceSendsTheRangeOfTheFile) {
  start();
  std::string contents = pattern(300 * 1024);
  temp_file file(contents);
  client c(endpoint_);
  auto res = c.request(bhttp::verb::get, "/file?path=" + file.path() + "&offset=1000&length=200000");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[bhttp::field::content_length], "200000");
  EXPECT_TRUE(res.body() == contents.substr(1000, 200000));
  EXPECT_EQ(c.request(bhttp::verb::get, "/hello?name=next").body(), "hello next");
}

// How many of the pages of [from, to) of the file at `path` are in the page cache.
std::size_t cached_pages(const std::string& path, std::size_t from, std::size_t to) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  void* map = ::mmap(nullptr, to - from, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(from));
  ::close(fd);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((to - from) / page);
  ::mincore(map, to - from, resident.data());
  ::munmap(map, to - from);
  return static_cast<std::size_t>(std::count_if(resident.begin(), resident.end(), [](unsigned char r) { return r & 1; }));
}

// A large file body is read ahead of sendfile: with the client reading nothing, so that sendfile
// stops once the socket buffers are full (a few MiB), the pages 24-32 MiB into a cold file still
// come into the page cache. Without the advice only the kernel's 128 KiB read-ahead would.
TEST_F(ServerTest, ALargeFileBodyIsReadAheadOfWhatTheSocketTook) {
  start();
  constexpr std::size_t mib = 1 << 20;
  temp_file file(pattern(48 * mib));
  {
    const int fd = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  const std::size_t pages = 8 * mib / static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  if (cached_pages(file.path(), 24 * mib, 32 * mib) != 0) GTEST_SKIP() << "the file system keeps files in memory";
  client c(endpoint_);
  c.send("GET /file?path=" + file.path() + "&offset=0&length=" + std::to_string(48 * mib) +
         " HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (cached_pages(file.path(), 24 * mib, 32 * mib) < pages && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);  // polling the page cache, which sends no signal
  }
  EXPECT_EQ(cached_pages(file.path(), 24 * mib, 32 * mib), pages);
}

// Clients that reset the connection while a file body is sent with sendfile(2) (an interrupted
// pull): the server sees EPIPE or ECONNRESET, not a SIGPIPE that would end the process, and serves on.
TEST_F(ServerTest, ClientsResettingMidFileBodyLeaveTheServerServing) {
  start();
  temp_file file(pattern(16 << 20));
  asio::io_context ioc;
  for (int i = 0; i < 20; ++i) {
    tcp::socket s(ioc);
    s.connect(endpoint_);
    const std::string get = "GET /file?path=" + file.path() + "&offset=0&length=" + std::to_string(16 << 20) +
                            " HTTP/1.1\r\nHost: t\r\n\r\n";
    asio::write(s, asio::buffer(get));
    char some[4096];
    s.read_some(asio::buffer(some));
    s.set_option(asio::socket_base::linger(true, 0));  // close() sends a reset
    s.close();
  }
  client c(endpoint_);
  EXPECT_EQ(c.request(bhttp::verb::get, "/hello?name=after").body(), "hello after");
}

TEST_F(ServerTest, StreamWithoutAFileIsReadInPieces) {
  start();
  std::string contents = pattern(600 * 1024);  // more than one 256 KiB piece
  temp_file file(contents);
  client c(endpoint_);
  auto res = c.request(bhttp::verb::get, "/file?fd=no&path=" + file.path() + "&offset=7&length=590000");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_TRUE(res.body() == contents.substr(7, 590000));
  EXPECT_EQ(c.request(bhttp::verb::get, "/hello?name=next").body(), "hello next");
}

// Ranges that start and end on either side of piece boundaries, read in pieces the reader cuts
// short: every byte arrives once and in order. The reads ask for at most a piece, one at a time,
// into two buffers at most (the memory bound), each starting where the last one ended.
TEST_F(ServerTest, StreamPiecesKeepTheirOrderAcrossPieceBoundaries) {
  start();
  const std::string contents = pattern(10'000);
  client c(endpoint_);
  for (const auto& [offset, length, most] : std::vector<std::tuple<std::size_t, std::size_t, std::size_t>>{
           {0, 10'000, 1000}, {999, 2, 1000}, {1000, 1000, 1000}, {1, 2999, 1000}, {0, 10'000, 333},
           {4321, 5679, 999}, {9999, 1, 1000}}) {
    SCOPED_TRACE(fmt::format("offset {} length {} most {}", offset, length, most));
    {
      std::lock_guard lock(pieces_.mutex);
      pieces_.reads.clear();
      pieces_.buffers.clear();
    }
    auto res = c.request(bhttp::verb::get, fmt::format("/pieces?size=10000&piece=1000&offset={}&length={}&most={}",
                                                       offset, length, most));
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_TRUE(res.body() == contents.substr(offset, length));
    std::lock_guard lock(pieces_.mutex);
    EXPECT_LE(pieces_.buffers.size(), 2u);
    std::uint64_t at = offset;
    for (const auto& [read_at, asked] : pieces_.reads) {
      EXPECT_EQ(read_at, at);
      EXPECT_LE(asked, 1000u);
      EXPECT_EQ(asked, std::min<std::size_t>(1000, offset + length - at));
      at += std::min(asked, most);
    }
    EXPECT_EQ(at, offset + length);
  }
  EXPECT_EQ(pieces_.most_in_flight, 1);
}

// The read of the next piece runs while the last one is written: with a client that reads
// nothing, the server cannot finish writing the first 8 MiB piece, yet the read of the second starts.
TEST_F(ServerTest, StreamReadsTheNextPieceWhileWritingTheLast) {
  start();
  constexpr std::size_t piece = 8 << 20;
  pieces_.signal_at = piece;
  auto reached = pieces_.reached.get_future();
  client c(endpoint_, 64 * 1024);
  c.send(fmt::format("GET /pieces?size={}&piece={} HTTP/1.1\r\nHost: t\r\n\r\n", 3 * piece, piece));
  EXPECT_EQ(reached.wait_for(30s), std::future_status::ready);
  auto res = c.read();
  EXPECT_TRUE(res.body() == pattern(3 * piece));
}

// A read that fails mid-body ends the connection after the bytes of the pieces before it: the
// client sees a body shorter than its Content-Length, never bytes from elsewhere.
TEST_F(ServerTest, AFailedReadEndsTheResponseAfterTheBytesBefore) {
  start();
  client c(endpoint_);
  c.send("GET /pieces?size=5000&piece=1000&fail_at=3000 HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string raw = c.read_to_end();
  EXPECT_NE(raw.find("Content-Length: 5000\r\n"), std::string::npos) << raw.substr(0, 200);
  EXPECT_TRUE(raw.ends_with("\r\n\r\n" + pattern(3000)));
}

TEST_F(ServerTest, FileShorterThanItsSliceClosesTheConnection) {
  start();
  temp_file file("short");
  for (std::string fd : {"yes", "no"}) {
    client c(endpoint_);
    c.send("GET /file?fd=" + fd + "&path=" + file.path() + "&offset=0&length=100 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string raw = c.read_to_end();  // ends: the client can tell the body is truncated
    EXPECT_NE(raw.find("Content-Length: 100"), std::string::npos);
    EXPECT_TRUE(raw.ends_with("\r\n\r\nshort")) << fd;
  }
}

TEST_F(ServerTest, TlsClientHelloOnThePlainPortGets400AndAClose) {
  server_options options;
  options.idle_timeout = 3600s;  // a server that waited for more would hang this test
  start(options);
  client c(endpoint_);
  const unsigned char hello[] = {0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03};
  c.send({reinterpret_cast<const char*>(hello), sizeof hello});
  std::string raw = c.read_to_end();
  EXPECT_TRUE(raw.starts_with("HTTP/1.1 400 Bad Request\r\n")) << raw;
  EXPECT_TRUE(raw.ends_with("\r\n\r\nthis port speaks plain HTTP\n")) << raw;
}

TEST_F(ServerTest, ConnectionCloseFromTheClientIsHonoured) {
  start();
  client c(endpoint_);
  c.send("GET /hello?name=x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  auto res = c.read();
  EXPECT_EQ(res.body(), "hello x");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(ServerTest, Http10ClosesAfterTheResponse) {
  start();
  client c(endpoint_);
  c.send("GET /hello?name=old HTTP/1.0\r\n\r\n");
  EXPECT_EQ(c.read().body(), "hello old");
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(ServerTest, HandlerExceptionIs500WithEmptyBodyAndClose) {
  start();
  client c(endpoint_);
  auto res = c.request(bhttp::verb::get, "/throw");
  EXPECT_EQ(res.result_int(), 500);
  EXPECT_EQ(res.body(), "");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(ServerTest, OversizedHeaderIs431) {
  server_options options;
  options.max_header_bytes = 1024;
  start(options);
  client c(endpoint_);
  c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(2048, 'x') + "\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 431);
}

TEST_F(ServerTest, ShutdownLetsARequestInFlightFinishAndClosesIdleConnections) {
  start();
  client idle(endpoint_);
  EXPECT_EQ(idle.request(bhttp::verb::get, "/hello?name=idle").body(), "hello idle");  // now registered, idle
  client busy(endpoint_);
  busy.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
  entered_.get_future().wait();

  auto begun = std::chrono::steady_clock::now();
  server_->shutdown(30s);
  EXPECT_TRUE(idle.closed_by_server());
  release_slow_handler();
  auto res = busy.read();
  EXPECT_EQ(res.body(), "finished");
  EXPECT_FALSE(res.keep_alive());
  for (auto& t : threads_) t.join();  // run() returned: nothing waits for the grace period
  threads_.clear();
  EXPECT_LT(std::chrono::steady_clock::now() - begun, 10s);
  EXPECT_THROW(client late(endpoint_), boost::system::system_error);
}

TEST_F(ServerTest, ShutdownServesRequestsWaitingInTheListenBacklog) {
  start({}, false);
  client waiting(endpoint_);  // connected by the kernel, not yet accepted
  waiting.send("GET /hello?name=backlog HTTP/1.1\r\nHost: t\r\n\r\n");
  server_->shutdown(30s);
  run_threads();
  auto res = waiting.read();
  EXPECT_EQ(res.body(), "hello backlog");
  // Answered, then closed. (The answer may still offer keep-alive: with two threads the pending
  // accept can complete, and the request be answered, before the shutdown handler runs.)
  EXPECT_TRUE(waiting.closed_by_server());
  for (auto& t : threads_) t.join();
  threads_.clear();
  EXPECT_THROW(client late(endpoint_), boost::system::system_error);
}

TEST_F(ServerTest, ShutdownForcesStuckConnectionsAfterTheGrace) {
  start();
  client stuck(endpoint_);
  stuck.send("PUT /stuck HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten b");
  entered_.get_future().wait();
  stop(50ms);  // returns only once run() has returned on every thread
  std::string raw = stuck.read_to_end();
  EXPECT_EQ(raw.find("200 OK"), std::string::npos);
}

TEST_F(ServerTest, ABodyThatStopsArrivingIs408AndClosesTheConnection) {
  server_options options;
  options.body_idle_timeout = 1s;
  start(options);
  client c(endpoint_);
  c.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten b");
  auto begun = std::chrono::steady_clock::now();
  std::string raw = c.read_to_end();  // returns when the server closes
  EXPECT_GE(std::chrono::steady_clock::now() - begun, 900ms);
  EXPECT_TRUE(raw.starts_with("HTTP/1.1 408 ")) << raw;
  EXPECT_NE(raw.find("REQUEST_TIMEOUT"), std::string::npos) << raw;
  EXPECT_NE(raw.find("Connection: close"), std::string::npos) << raw;
}

TEST_F(ServerTest, AChunkedBodyThatStopsArrivingIs408Too) {
  server_options options;
  options.body_idle_timeout = 1s;
  start(options);
  client c(endpoint_);
  c.send("PUT /manifest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  EXPECT_TRUE(c.read_to_end().starts_with("HTTP/1.1 408 "));
}

// Each request is answered 400 (or 501) with Connection: close, and nothing after it runs: the bytes
// that follow are what a proxy framing the message differently would take for the next request.
TEST_F(ServerTest, FramingTheServerDoesNotUnderstandIsRefusedAndCloses) {
  start();
  const std::string next = "GET /hello?name=smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
  const std::string length = "Content-Length: " + std::to_string(next.size()) + "\r\n";
  const std::pair<std::string, const char*> cases[] = {
      {"Transfer-Encoding: xchunked\r\n", "400"},
      {"Transfer-Encoding: chunked, identity\r\n", "400"},
      {"Transfer-Encoding: identity\r\n", "400"},
      {"Transfer-Encoding: identity\r\n" + length, "400"},
      {"Transfer-Encoding: xchunked\r\n" + length, "400"},
      {length + "Transfer-Encoding: chunked\r\n", "400"},
      {"Transfer-Encoding: chunked\r\n" + length, "400"},
      {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "400"},
      {"Transfer-Encoding: gzip, chunked\r\n", "501"},
      {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "501"},
  };
  for (const auto& [headers, status] : cases) {
    client c(endpoint_);
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\n" + headers + "\r\n" + next);
    std::string raw = c.read_to_end();
    EXPECT_TRUE(raw.starts_with(std::string("HTTP/1.1 ") + status + " ")) << headers << raw;
    EXPECT_NE(raw.find("Connection: close"), std::string::npos) << headers << raw;
    EXPECT_EQ(raw.find("smuggled"), std::string::npos) << headers << raw;
  }
}

TEST_F(ServerTest, HostMustBeThereOnceAndLinesMustNotBeFolded) {
  start();
  for (const char* raw : {"GET /hello HTTP/1.1\r\n\r\n", "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                          "GET /hello HTTP/1.1\r\nHost: t\r\nX-Folded: one\r\n two\r\n\r\n",
                          "GET /hello HTTP/1.1\r\nHost: t\r\nX-Folded: one\r\n\ttwo\r\n\r\n"}) {
    client c(endpoint_);
    c.send(raw);
    std::string answer = c.read_to_end();
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 400 ")) << raw << answer;
  }
  client old(endpoint_);  // HTTP/1.0 needs no Host
  old.send("GET /hello?name=old HTTP/1.0\r\n\r\n");
  EXPECT_EQ(old.read().body(), "hello old");
  client spaced(endpoint_);  // spaces inside a value are not folds
  spaced.send("GET /hello?name=x HTTP/1.1\r\nHost: t\r\nX-Spaced: a  b\t c\r\n\r\n");
  EXPECT_EQ(spaced.read().body(), "hello x");
}

TEST_F(ServerTest, PastTheCapANewConnectionIs503WithRetryAfter) {
  server_options options;
  options.max_connections = 1;
  options.max_connections_per_address = 10;
  start(options);
  client holder(endpoint_);  // counted from the accept on, though silent
  client turned(endpoint_);
  turned.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string raw = turned.read_to_end();
  EXPECT_TRUE(raw.starts_with("HTTP/1.1 503 ")) << raw;
  EXPECT_NE(raw.find("Retry-After: "), std::string::npos) << raw;
  holder.send("GET /hello?name=holder HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(holder.read().body(), "hello holder");
}

TEST_F(ServerTest, PastThePerAddressCapANewConnectionIs429AndOtherAddressesAreServed) {
  server_options options;
  options.max_connections = 10;
  options.max_connections_per_address = 1;
  start(options);
  client holder(endpoint_);
  client turned(endpoint_);
  turned.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string raw = turned.read_to_end();
  EXPECT_TRUE(raw.starts_with("HTTP/1.1 429 ")) << raw;
  EXPECT_NE(raw.find("Retry-After: "), std::string::npos) << raw;
  client other(endpoint_, "127.0.0.2");
  EXPECT_EQ(other.request(bhttp::verb::get, "/hello?name=other").body(), "hello other");
}

TEST_F(ServerTest, PastTheRefusalsInFlightANewConnectionIsClosedWithoutAnAnswer) {
  server_options options;
  options.max_connections = 4;  // and so one refusal in flight
  options.max_connections_per_address = 10;
  start(options);
  std::vector<std::unique_ptr<client>> holders;
  for (int i = 0; i < 4; ++i) holders.push_back(std::make_unique<client>(endpoint_));
  client refused(endpoint_);  // silent: the server waits for its request to answer 503
  client dropped(endpoint_);
  dropped.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(dropped.read_to_end(), "");
  refused.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_TRUE(refused.read_to_end().starts_with("HTTP/1.1 503 "));
}

TEST_F(ServerTest, AtTheCapTheIdleKeepAliveConnectionMakesRoom) {
  server_options options;
  options.max_connections = 1;
  options.max_connections_per_address = 10;
  start(options);
  client idle(endpoint_);
  EXPECT_EQ(idle.request(bhttp::verb::get, "/hello?name=a").body(), "hello a");
  // `idle` is marked idle once its coroutine is back waiting for a request, a moment after the
  // client has the response: until then a new connection is turned away (503, or closed while the
  // previous 503 is still in flight). Retry until it is not.
  auto deadline = std::chrono::steady_clock::now() + 20s;
  std::string raw;
  do {
    client next(endpoint_);
    next.send("GET /hello?name=b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    raw = next.read_to_end();
  } while ((raw.empty() || raw.starts_with("HTTP/1.1 503 ")) && std::chrono::steady_clock::now() < deadline);
  EXPECT_TRUE(raw.ends_with("hello b")) << raw;
  EXPECT_TRUE(idle.closed_by_server());
}

TEST(ServerListen, BadAddressesThrow) {
  asio::io_context ioc;
  auto listen = [&](std::string address) {
    server_options options;
    options.listen = std::move(address);
    server s(ioc, options, [](request&) -> asio::awaitable<response> { co_return response{}; });
    return s.listen();
  };
  EXPECT_THROW(listen("127.0.0.1"), std::runtime_error);
  EXPECT_THROW(listen("127.0.0.1:99999"), std::runtime_error);
  EXPECT_THROW(listen("127.0.0.1:http"), std::runtime_error);
  EXPECT_THROW(listen("::1:5000"), std::runtime_error);
  EXPECT_THROW(listen("[::1:5000"), std::runtime_error);
  EXPECT_THROW(listen("192.0.2.1:0"), std::runtime_error);  // not an address of this host

  server_options taken;
  taken.listen = "127.0.0.1:0";
  server first(ioc, taken, [](request&) -> asio::awaitable<response> { co_return response{}; });
  auto bound = first.listen();
  EXPECT_NE(bound.port(), 0);
  EXPECT_THROW(listen("127.0.0.1:" + std::to_string(bound.port())), std::runtime_error);
}

TEST(ServerListen, MissingTlsFilesThrow) {
  asio::io_context ioc;
  server_options options;
  options.listen = "127.0.0.1:0";
  options.tls = tls_files{"/nonexistent/cert.pem", "/nonexistent/key.pem"};
  server s(ioc, options, [](request&) -> asio::awaitable<response> { co_return response{}; });
  EXPECT_THROW(s.listen(), std::runtime_error);
}

// A self-signed certificate for 127.0.0.1, written as PEM files.
struct self_signed {
  self_signed() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_EXTENSION* san =
        X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, const_cast<char*>("IP:127.0.0.1"));
    X509_add_ext(cert, san, -1);
    X509_EXTENSION_free(san);
    X509_set_pubkey(cert, key);
    X509_sign(cert, key, EVP_sha256());
    write(cert_file.path(), [&](FILE* f) { PEM_write_X509(f, cert); });
    write(key_file.path(), [&](FILE* f) { PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr); });
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  template <class F>
  static void write(const std::string& path, F f) {
    FILE* out = std::fopen(path.c_str(), "w");
    f(out);
    std::fclose(out);
  }
  temp_file cert_file{""};
  temp_file key_file{""};
};

TEST_F(ServerTest, TlsServesRequestsAndFileSlices) {
  self_signed pem;
  server_options options;
  options.tls = tls_files{pem.cert_file.path(), pem.key_file.path()};
  start(options);
  std::string contents = pattern(600 * 1024);  // more than one 256 KiB piece
  temp_file file(contents);

  asio::io_context ioc;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_verify_mode(asio::ssl::verify_none);
  beast::ssl_stream<tcp::socket> stream(ioc, ctx);
  stream.next_layer().connect(endpoint_);
  stream.handshake(asio::ssl::stream_base::client);
  beast::flat_buffer buffer;
  auto get = [&](std::string target) {
    bhttp::request<bhttp::empty_body> req(bhttp::verb::get, target, 11);
    req.set(bhttp::field::host, "test");
    bhttp::write(stream, req);
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    bhttp::read(stream, buffer, parser);
    return parser.release();
  };
  EXPECT_EQ(get("/hello?name=tls").body(), "hello tls");
  auto res = get("/file?path=" + file.path() + "&offset=5&length=" + std::to_string(contents.size() - 10));
  EXPECT_TRUE(res.body() == contents.substr(5, contents.size() - 10));
}

TEST_F(ServerTest, HttpsGetTrustsOnlyTheGivenCertificatesAndChecksTheAnswer) {
  self_signed pem;
  server_options options;
  options.tls = tls_files{pem.cert_file.path(), pem.key_file.path()};
  start(options);
  const std::string base = "https://127.0.0.1:" + std::to_string(endpoint_.port());
  const client_options trusted{.ca_file = pem.cert_file.path()};

  auto ok = https_get(base + "/hello?name=fetch", trusted);
  ASSERT_TRUE(ok) << ok.error().detail;
  EXPECT_EQ(*ok, "hello fetch");

  auto untrusted = https_get(base + "/hello");  // the system store does not know this certificate
  ASSERT_FALSE(untrusted);
  EXPECT_NE(untrusted.error().detail.find("TLS handshake failed"), std::string::npos) << untrusted.error().detail;

  auto status = https_get(base + "/reject", trusted);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().detail, "GET " + base + "/reject: HTTP status 401");

  auto large =
      https_get(base + "/hello?name=" + std::string(100, 'x'), {.ca_file = pem.cert_file.path(), .max_bytes = 50});
  ASSERT_FALSE(large) << *large;
  EXPECT_NE(large.error().detail.find("larger than 50 bytes"), std::string::npos) << large.error().detail;

  for (const char* bad : {"http://127.0.0.1/", "https://", "https://host:99999/", "https://user@host/"}) {
    auto refused = https_get(bad, trusted);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().code, errc::unavailable);
  }
}

// A body source that hands out fixed pieces, then the end or `failure`, for request's own helpers.
class fake_source final : public body_source {
 public:
  explicit fake_source(std::vector<std::string> pieces, std::optional<error> failure = std::nullopt)
      : pieces_(std::move(pieces)), failure_(std::move(failure)) {}
  std::size_t largest_ask() const { return largest_ask_; }

  asio::awaitable<result<std::size_t>> read_some(std::span<char> buf) override {
    largest_ask_ = std::max(largest_ask_, buf.size());
    if (next_ == pieces_.size() && failure_) co_return std::unexpected(*failure_);
    if (next_ == pieces_.size()) co_return 0;
    std::string& piece = pieces_[next_];
    std::size_t n = std::min(buf.size(), piece.size());
    std::copy_n(piece.data(), n, buf.data());
    piece.erase(0, n);
    if (piece.empty()) ++next_;
    co_return n;
  }

 private:
  std::vector<std::string> pieces_;
  std::optional<error> failure_;
  std::size_t next_ = 0;
  std::size_t largest_ask_ = 0;
};

template <class T>
T run_sync(asio::awaitable<T> a) {
  asio::io_context ioc;
  auto f = asio::co_spawn(ioc, std::move(a), asio::use_future);
  ioc.run();
  return f.get();
}

request make_request(std::string target, std::optional<std::uint64_t> length, body_source* body) {
  return request(bhttp::verb::get, std::move(target), {}, length, !length.has_value(), "127.0.0.1", body);
}

TEST(Request, PathAndQuery) {
  auto req = make_request("/v2/a/tags/list?n=10&last=b%2Fc&tag=x+y&tag=z&flag&n=20", 0, nullptr);
  EXPECT_EQ(req.path(), "/v2/a/tags/list");
  EXPECT_EQ(req.query("n"), "10");
  EXPECT_EQ(req.query("last"), "b/c");
  EXPECT_EQ(req.query("flag"), "");
  EXPECT_EQ(req.query("missing"), std::nullopt);
  EXPECT_EQ(req.query_all("tag"), (std::vector<std::string>{"x y", "z"}));
  EXPECT_EQ(req.query_all("n"), (std::vector<std::string>{"10", "20"}));
  EXPECT_EQ(make_request("/p?a%20b=1&bad=%zz%4", 0, nullptr).query("a b"), "1");
  EXPECT_EQ(make_request("/p?bad=%zz%4", 0, nullptr).query("bad"), "%zz%4");
  EXPECT_EQ(make_request("/plain", 0, nullptr).path(), "/plain");
  EXPECT_EQ(make_request("/plain", 0, nullptr).query("a"), std::nullopt);
}

TEST(Request, ReadBodyRefusesAnAnnouncedSizePastTheLimitWithoutReading) {
  fake_source source({"0123456789"});
  auto req = make_request("/", 10, &source);
  auto body = run_sync(req.read_body(9));
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, errc::payload_too_large);
  EXPECT_EQ(run_sync(source.read_some(source.scratch())).value(), 10u);  // untouched
}

TEST(Request, ReadBodyOfAChunkedBodyStopsJustPastTheLimit) {
  fake_source fits({"abc", "def"});
  auto ok = make_request("/", std::nullopt, &fits);
  EXPECT_EQ(run_sync(ok.read_body(6)).value(), "abcdef");

  fake_source big({std::string(40000, 'x'), std::string(40000, 'y')});
  auto too_big = make_request("/", std::nullopt, &big);
  auto body = run_sync(too_big.read_body(50000));
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, errc::payload_too_large);
}

TEST(Request, ShortBodyIsSizeInvalid) {
  fake_source source({"abc"});
  auto req = make_request("/", 10, &source);
  auto body = run_sync(req.read_body(100));
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, errc::size_invalid);
}

TEST(Request, ReadBodyAllocatesAsTheBytesArriveNotAsAnnounced) {
  fake_source source({"x"});  // 4 MiB announced, one byte sent
  auto req = make_request("/", 4 * 1024 * 1024, &source);
  auto body = run_sync(req.read_body(4 * 1024 * 1024));
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, errc::size_invalid);
  EXPECT_LE(source.largest_ask(), 16u * 1024);

  fake_source whole({std::string(100000, 'a'), std::string(100000, 'b')});
  auto grown = make_request("/", 200000, &whole);
  EXPECT_EQ(run_sync(grown.read_body(200000)).value(), std::string(100000, 'a') + std::string(100000, 'b'));
}

TEST(Request, StreamBodyPassesWhatArrivedBeforeTheSourceFailed) {
  fake_source source({"0123456789"}, error{errc::request_timeout, "stalled"});
  auto req = make_request("/", 100, &source);
  std::string received;
  auto r = run_sync(req.stream_body([&](std::string_view piece) -> asio::awaitable<result<void>> {
    received.append(piece);
    co_return result<void>{};
  }));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::request_timeout);
  EXPECT_EQ(received, "0123456789");
}

TEST(Request, StreamBodyStopsAtTheSinksError) {
  fake_source source({std::string(3 * body_source::scratch_size, 'x')});
  auto req = make_request("/", 3 * body_source::scratch_size, &source);
  int calls = 0;
  auto r = run_sync(req.stream_body([&](std::string_view) -> asio::awaitable<result<void>> {
    ++calls;
    co_return fail(errc::internal, "disk full");
  }));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().detail, "disk full");
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace berth::http
