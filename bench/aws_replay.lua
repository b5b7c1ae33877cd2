-- wrk script: replays one pre-signed AWS request. The file named by AWS_REPLAY_FILE holds
-- header lines ("Name: value"), a blank line, then the body (bench/aws.sh writes it).
local f = assert(io.open(assert(os.getenv("AWS_REPLAY_FILE"), "AWS_REPLAY_FILE is not set"), "rb"))
local text = f:read("*a")
f:close()
local head, body = text:match("^(.-)\n\n(.*)$")
wrk.method = "POST"
wrk.body = body
for line in head:gmatch("[^\n]+") do
  local k, v = line:match("^([^:]+):%s*(.*)$")
  if k:lower() ~= "host" then wrk.headers[k] = v end
end
