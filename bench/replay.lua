-- wrk script: replay pre-built raw HTTP requests and check every answer.
--
--   wrk -t T -c C -d Ns -s bench/replay.lua URL -- STOCK EXPECT_STATUS [EXPECT_BODY [PACE_MS]]
--
-- PACE_MS (default 0): each connection waits this long before each request,
-- so C connections send about C * 1000 / (PACE_MS + latency) requests a
-- second: a steady rate below saturation, where latency measures the
-- server and not its queue.
--
-- Thread i (from 0) replays the file STOCK.i: raw HTTP/1.1 requests, each
-- written as its length in bytes, a newline, then the bytes (see
-- bench/loadgen.py, write_stock). Built and signed before the run, so each
-- webhook has its own CallSid and a valid X-Twilio-Signature, and each API
-- call its own order. Past the end of its file a thread starts again from
-- the top and counts the replays as "reused" (the caller decides whether
-- that matters).
--
-- An answer passes when its status is EXPECT_STATUS and, if EXPECT_BODY is
-- given, its body contains that text. At the end one line goes to stdout:
-- "WRK-JSON " and a JSON object (counts, status histogram, first failure,
-- latency percentiles in microseconds, socket errors).

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local function read_stock(path)
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  local stock, pos = {}, 1
  while pos <= #data do
    local newline = data:find("\n", pos, true)
    local length = tonumber(data:sub(pos, newline - 1))
    stock[#stock + 1] = data:sub(newline + 1, newline + length)
    pos = newline + 1 + length
  end
  assert(#stock > 0, "empty request stock " .. path)
  return stock
end

function init(args)
  stock = read_stock(args[1] .. "." .. id)
  stocked = #stock
  expect_status = tonumber(args[2])
  expect_body = args[3]
  if expect_body == "" then
    expect_body = nil
  end
  pace_ms = tonumber(args[4] or "0") or 0
  sent = 0
  failures = 0
  statuses = {}
  first_failure = nil
end

function delay()
  return pace_ms
end

function request()
  sent = sent + 1
  return stock[(sent - 1) % #stock + 1]
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status ~= expect_status or (expect_body and not (body or ""):find(expect_body, 1, true)) then
    failures = failures + 1
    if first_failure == nil then
      -- No phone number in any output: a party number is secret.
      first_failure = "HTTP " .. key .. ": " .. (body or ""):sub(1, 160):gsub("%+?%d%d%d%d%d%d%d+", "<number>")
    end
  end
end

local function quote(text)
  return '"' .. text:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode(value)
  if type(value) == "table" then
    local parts = {}
    for k, v in pairs(value) do
      parts[#parts + 1] = quote(tostring(k)) .. ":" .. encode(v)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(value) == "string" then
    return quote(value)
  elseif value == nil then
    return "null"
  end
  return string.format("%.17g", value)
end

function done(summary, latency, requests)
  local failed, reused, histogram, first = 0, 0, {}, nil
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
    reused = reused + math.max(0, thread:get("sent") - thread:get("stocked"))
    for status, count in pairs(thread:get("statuses")) do
      histogram[status] = (histogram[status] or 0) + count
    end
    first = first or thread:get("first_failure")
  end
  local result = {
    answers = summary.requests,
    failures = failed,
    reused = reused,
    statuses = histogram,
    first_failure = first,
    duration_us = summary.duration,
    socket_errors = summary.errors,
    latency_us = {
      p50 = latency:percentile(50),
      p90 = latency:percentile(90),
      p99 = latency:percentile(99),
      max = latency.max,
      mean = latency.mean,
    },
  }
  io.write("WRK-JSON " .. encode(result) .. "\n")
end
