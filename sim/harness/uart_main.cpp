// UART harness for a Verilated top level with ports clk, rst, uart_rx, uart_tx.
//
// Bytes read from stdin are sent on uart_rx as 8N1 frames, `--baud-div`
// clocks per bit; 8N1 frames seen on uart_tx are decoded and written to
// stdout.  The clock runs only while something is going on: a byte waits to
// be sent, a frame is being sent or received, the optional busy output is
// high (define NCX_BUSY_PORT=<port>), or fewer than `--idle-cycles` clocks
// have passed since the last activity.  Then the harness sleeps until stdin
// has data; EOF on stdin ends it.  Counters go to stderr at exit.
//
// Used by neurocorex.sim.rtl.RTLSerial; built by neurocorex.sim.verilog.

#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

struct Options {
    unsigned baud_div = 4;
    uint64_t idle_cycles = 1u << 16;
    unsigned reset_cycles = 8;
    unsigned io_period = 256;       // clocks between stdin/stdout checks
};

Options parse(int argc, char** argv) {
    Options o;
    for (int k = 1; k < argc; ++k) {
        std::string a = argv[k];
        auto next = [&]() -> unsigned long long {
            if (k + 1 >= argc) { fprintf(stderr, "missing value after %s\n", a.c_str()); exit(2); }
            return strtoull(argv[++k], nullptr, 0);
        };
        if (a == "--baud-div") o.baud_div = next();
        else if (a == "--idle-cycles") o.idle_cycles = next();
        else if (a == "--reset-cycles") o.reset_cycles = next();
        else if (a == "--io-period") o.io_period = next();
        else { fprintf(stderr, "unknown option %s\n", a.c_str()); exit(2); }
    }
    if (o.baud_div < 2) { fprintf(stderr, "--baud-div must be >= 2\n"); exit(2); }
    if (o.io_period < 1) o.io_period = 1;
    return o;
}

// Transmitter into the design's uart_rx.
struct Serializer {
    unsigned div;
    uint16_t frame = 0;
    int bits_left = 0;              // bits of the current frame still to send
    unsigned cnt = 0;
    bool active() const { return bits_left > 0; }
    void load(uint8_t b) { frame = (1u << 9) | (uint16_t(b) << 1); bits_left = 10; cnt = div; }
    int line() const { return active() ? (frame & 1) : 1; }
    void tick() {               // after one clock with line() applied
        if (!active()) return;
        if (--cnt == 0) { frame >>= 1; --bits_left; cnt = div; }
    }
};

// Receiver of the design's uart_tx.
struct Deserializer {
    unsigned div;
    bool active = false;
    int bit = 0;                // -1: start bit, 0..7 data, 8 stop
    unsigned cnt = 0;
    uint8_t shreg = 0;
    uint64_t framing_errors = 0;
    // Returns 1 and sets out when a byte completes.
    int sample(int tx, uint8_t& out) {
        if (!active) {
            if (tx == 0) { active = true; bit = -1; cnt = div / 2; }
            return 0;
        }
        if (--cnt != 0) return 0;
        cnt = div;
        if (bit == -1) {
            if (tx != 0) { active = false; return 0; }   // glitch, not a start bit
            bit = 0;
        } else if (bit < 8) {
            shreg = uint8_t((shreg >> 1) | (tx ? 0x80 : 0));
            ++bit;
        } else {
            active = false;
            if (tx == 0) { ++framing_errors; return 0; }
            out = shreg;
            return 1;
        }
        return 0;
    }
};

}  // namespace

int main(int argc, char** argv) {
    Options opt = parse(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);

    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtop>(ctx.get(), "top");

    Serializer ser{opt.baud_div};
    Deserializer des{opt.baud_div};
    std::deque<uint8_t> to_dut;
    std::vector<uint8_t> from_dut;
    std::vector<uint8_t> buf(1 << 16);
    uint64_t cycles = 0, bytes_in = 0, bytes_out = 0, idle = 0, sleeps = 0;
    bool eof = false;

    auto tick = [&]() {
        top->clk = 1; top->eval();
        top->clk = 0; top->eval();
        ++cycles;
    };
    auto pull_stdin = [&]() {
        for (;;) {
            ssize_t n = read(0, buf.data(), buf.size());
            if (n > 0) { to_dut.insert(to_dut.end(), buf.begin(), buf.begin() + n); bytes_in += n; continue; }
            if (n == 0) eof = true;
            else if (errno == EINTR) continue;
            return;
        }
    };
    auto push_stdout = [&]() -> bool {
        size_t off = 0;
        while (off < from_dut.size()) {
            ssize_t n = write(1, from_dut.data() + off, from_dut.size() - off);
            if (n > 0) { off += n; continue; }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) { struct pollfd p{1, POLLOUT, 0}; poll(&p, 1, -1); continue; }
            return false;           // reader gone
        }
        from_dut.clear();
        return true;
    };

    top->clk = 0; top->rst = 1; top->uart_rx = 1; top->eval();
    for (unsigned k = 0; k < opt.reset_cycles; ++k) tick();
    top->rst = 0;

    for (;;) {
        // Run a slice of clocks.
        for (unsigned k = 0; k < opt.io_period; ++k) {
            if (!ser.active() && !to_dut.empty()) { ser.load(to_dut.front()); to_dut.pop_front(); }
            top->uart_rx = ser.line();
            tick();
            ser.tick();
            uint8_t b;
            if (des.sample(top->uart_tx, b)) { from_dut.push_back(b); ++bytes_out; }
            bool busy = ser.active() || des.active || !top->uart_tx;
#ifdef NCX_BUSY_PORT
            busy = busy || top->NCX_BUSY_PORT;
#endif
            idle = busy ? 0 : idle + 1;
        }
        if (!from_dut.empty() && !push_stdout()) break;
        if (!eof) pull_stdin();
        if (to_dut.empty() && idle >= opt.idle_cycles) {
            if (eof) break;
            // Nothing is going on: sleep until the host sends something.
            struct pollfd p{0, POLLIN, 0};
            ++sleeps;
            while (poll(&p, 1, -1) < 0 && errno == EINTR) {}
            pull_stdin();
            if (to_dut.empty() && eof) break;
            idle = 0;
        }
    }
    push_stdout();
    top->final();
    fprintf(stderr, "ncx-harness cycles=%llu bytes_in=%llu bytes_out=%llu framing_errors=%llu sleeps=%llu\n",
            (unsigned long long)cycles, (unsigned long long)bytes_in, (unsigned long long)bytes_out,
            (unsigned long long)des.framing_errors, (unsigned long long)sleeps);
    return 0;
}
