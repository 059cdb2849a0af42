-- wrk script for scripts/bench-load: POSTs pre-signed gigstack deliveries.
--
--   BENCH_DELIVERIES=/path/deliveries.tsv wrk -t1 -c32 -d10s --latency \
--       -s bench/wrk/deliveries.lua http://127.0.0.1:PORT/webhooks/gigstack
--   (or pass the path after the URL: ... URL -- /path/deliveries.tsv)
--
-- The file has one delivery per line, `SIGNATURE<TAB>BODY` (bench/gen_deliveries.py).
-- Each request sends the next delivery, wrapping around at the end, so every
-- request is a new event until the file has been sent once. With several
-- threads each starts at its own offset, so they do not send the same events.
--
-- There is deliberately no response() callback: with one, wrk hands every
-- response body to Lua, and on one core at tens of thousands of requests a
-- second the client's own work (and its garbage collector) shows up as
-- milliseconds of the server's p99. wrk counts non-2xx answers itself;
-- bench-load counts new events in the server's database afterwards. done()
-- prints `bench-wraps N` and `bench-errors ...`.

local threads = {}   -- setup() side: every thread, so done() can aggregate

function setup(thread)
   -- Sets the global `bench_thread` (0, 1, ...) in that thread's Lua state.
   thread:set("bench_thread", #threads)
   table.insert(threads, thread)
end

-- Per-thread state (each wrk thread has its own Lua state).
local prepared = {}  -- ready-made raw HTTP requests, one per delivery
local count = 0
local next_i = 1
wraps = 0            -- global: done() reads it with thread:get

function init(args)
   local path = os.getenv("BENCH_DELIVERIES") or args[1]
   if not path or path == "" then
      error("deliveries file: set BENCH_DELIVERIES or pass it after the URL (-- FILE)")
   end
   local file = assert(io.open(path, "rb"))
   for line in file:lines() do
      local tab = line:find("\t", 1, true)
      if tab then
         local headers = {
            ["Content-Type"] = "application/json",
            ["X-Gigstack-Signature"] = line:sub(1, tab - 1),
         }
         -- Format once here, so request() costs nothing but a table lookup
         -- and wrk's own CPU stays off the measurement.
         count = count + 1
         prepared[count] = wrk.format("POST", nil, headers, line:sub(tab + 1))
      end
   end
   file:close()
   if count == 0 then
      error("no deliveries in " .. path)
   end
   -- The table is large: collect the garbage of loading it now, and not
   -- during the (bounded) run, whose own garbage is small.
   collectgarbage("collect")
   collectgarbage("stop")
   -- Spread the threads over the file so they do not repeat each other's ids
   -- (setup() runs just before each thread's init(), so the total is not
   -- known here: BENCH_THREADS tells it when wrk runs with -t above 1).
   local threads_total = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
   next_i = math.floor(count * (bench_thread or 0) / threads_total) % count + 1
end

function request()
   local req = prepared[next_i]
   next_i = next_i + 1
   if next_i > count then
      next_i = 1
      wraps = wraps + 1
   end
   return req
end

function done(summary, latency, requests)
   local wrapped = 0
   for _, thread in ipairs(threads) do
      wrapped = wrapped + thread:get("wraps")
   end
   io.write(string.format("bench-wraps %d\n", wrapped))
   io.write(string.format("bench-requests %d\n", summary.requests))
   io.write(string.format("bench-errors connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.errors.connect, summary.errors.read, summary.errors.write,
      summary.errors.status, summary.errors.timeout))
end
