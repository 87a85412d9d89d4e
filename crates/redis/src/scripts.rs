//! The Lua scripts: every fenced write checks and raises the device's fence atomically.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: fence, keys, vals. ARGV[1]: the caller's fence. A lower fence than the highest
/// adopted one is refused; a higher one becomes the new mark.
const FENCE_CHECK: &str = r"
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
local fence = tonumber(ARGV[1])
if fence < held then
  return redis.error_reply('WALOST the lease on this device is no longer held')
end
if fence > held then
  redis.call('SET', KEYS[1], ARGV[1])
end
";

fn fenced(body: &str) -> Script {
    Script::new(&format!("{FENCE_CHECK}\n{body}"))
}

pub(crate) static ADOPT: LazyLock<Script> = LazyLock::new(|| fenced("return 1"));

pub(crate) static PUT: LazyLock<Script> = LazyLock::new(|| {
    fenced(
        r"
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[2], 0, ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
return 1",
    )
});

pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    fenced(
        r"
for i = 2, #ARGV do
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
end
return 1",
    )
});

/// The members of KEYS[2] starting with ARGV[n], in byte order ('\255' follows every UTF-8 byte).
const RANGE: &str = r"
local function range(keys, prefix)
  if prefix == '' then
    return redis.call('ZRANGEBYLEX', keys, '-', '+')
  end
  return redis.call('ZRANGEBYLEX', keys, '[' .. prefix, '(' .. prefix .. '\255')
end
";

pub(crate) static DELETE_PREFIX: LazyLock<Script> = LazyLock::new(|| {
    fenced(&format!(
        r"{RANGE}
local doomed = range(KEYS[2], ARGV[2])
for _, k in ipairs(doomed) do
  redis.call('ZREM', KEYS[2], k)
  redis.call('HDEL', KEYS[3], k)
end
return #doomed"
    ))
});

pub(crate) static CLEAR: LazyLock<Script> =
    LazyLock::new(|| fenced("redis.call('DEL', KEYS[2], KEYS[3])\nreturn 1"));

/// Like CLEAR, then marks the fence one higher, so the caller's fence (and every older one)
/// is refused from now on; a newer lease's fence is adopted as usual.
pub(crate) static SEAL: LazyLock<Script> = LazyLock::new(|| {
    fenced(
        r"
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SET', KEYS[1], tostring(tonumber(ARGV[1]) + 1))
return 1",
    )
});

/// KEYS[1]: the companions hash (`c:<companion>` -> device, `d:<device>` -> companion).
/// ARGV: device, companion. Returns '' when registered, or the device that holds the
/// companion.
pub(crate) static REGISTER_COMPANION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local holder = redis.call('HGET', KEYS[1], 'c:' .. ARGV[2])
if holder and holder ~= ARGV[1] then
  return holder
end
local old = redis.call('HGET', KEYS[1], 'd:' .. ARGV[1])
if old and old ~= ARGV[2] then
  redis.call('HDEL', KEYS[1], 'c:' .. old)
end
redis.call('HSET', KEYS[1], 'c:' .. ARGV[2], ARGV[1], 'd:' .. ARGV[1], ARGV[2])
return ''",
    )
});

/// KEYS[1]: the companions hash. ARGV[1]: the device whose companion is forgotten.
pub(crate) static FORGET_COMPANION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('HGET', KEYS[1], 'd:' .. ARGV[1])
if old then
  redis.call('HDEL', KEYS[1], 'c:' .. old, 'd:' .. ARGV[1])
end
return 1",
    )
});

/// KEYS: keys, vals. ARGV[1]: prefix. Returns key, value, key, value...
pub(crate) static SCAN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{RANGE}
local out = {{}}
for _, k in ipairs(range(KEYS[1], ARGV[1])) do
  local v = redis.call('HGET', KEYS[2], k)
  if v then
    table.insert(out, k)
    table.insert(out, v)
  end
end
return out"
    ))
});

/// KEYS[1]: vals. ARGV: key, expected, value. Replaces the value only while it is still the
/// expected one; returns 1 when it did.
pub(crate) static REPLACE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and v == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0",
    )
});

/// A token bucket on the server's clock. KEYS[1]: the bucket. ARGV: capacity, refill ms.
/// Returns {1, 0} when a token was taken, {0, ms until one is available} otherwise.
pub(crate) static BUDGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or capacity)
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or now)
tokens = math.min(capacity, tokens + (now - at) / refill)
local ttl = math.ceil(capacity * refill)
if tokens >= 1 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, 0}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ttl)
return {0, math.ceil((1 - tokens) * refill)}",
    )
});
