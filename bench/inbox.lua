-- wrk script: POST a TAXII 1.1 inbox message carrying one ~2 KB STIX package.
-- Environment: TAXIWAY_FEED (default Public), TAXIWAY_AUTH ("user:password", optional).

local feed = os.getenv("TAXIWAY_FEED") or "Public"
local indicators = {}
for i = 1, 6 do
  indicators[#indicators + 1] = string.format(
    '<stix:Indicator id="example:Indicator-%d" timestamp="2014-05-08T09:00:00Z">' ..
    '<indicator:Title xmlns:indicator="http://stix.mitre.org/Indicator-2">Malicious address %d</indicator:Title>' ..
    '<indicator:Description xmlns:indicator="http://stix.mitre.org/Indicator-2">Seen scanning and brute-forcing ' ..
    'SSH on many hosts of the sharing community during the last day; block at the perimeter.</indicator:Description>' ..
    '</stix:Indicator>', i, i)
end
local package = '<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" id="example:Package-1" version="1.1.1">' ..
  '<stix:STIX_Header><stix:Title>Load test package</stix:Title></stix:STIX_Header><stix:Indicators>' ..
  table.concat(indicators) .. '</stix:Indicators></stix:STIX_Package>'

wrk.method = "POST"
wrk.body = '<taxii_11:Inbox_Message xmlns:taxii_11="http://taxii.mitre.org/messages/taxii_xml_binding-1.1" message_id="load-1">' ..
  '<taxii_11:Destination_Collection_Name>' .. feed .. '</taxii_11:Destination_Collection_Name>' ..
  '<taxii_11:Content_Block><taxii_11:Content_Binding binding_id="urn:stix.mitre.org:xml:1.1.1"/>' ..
  '<taxii_11:Content>' .. package .. '</taxii_11:Content></taxii_11:Content_Block></taxii_11:Inbox_Message>'
wrk.headers["Content-Type"] = "application/xml"
wrk.headers["X-TAXII-Content-Type"] = "urn:taxii.mitre.org:message:xml:1.1"
wrk.headers["X-TAXII-Services"] = "urn:taxii.mitre.org:services:1.1"
wrk.headers["X-TAXII-Protocol"] = "urn:taxii.mitre.org:protocol:http:1.0"
local auth = os.getenv("TAXIWAY_AUTH")
if auth and auth ~= "" then
  -- wrk has no base64; the caller passes the header value ready-made.
  wrk.headers["Authorization"] = "Basic " .. auth
end

-- Each wrk thread runs its own Lua state: count there, add up in done().
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end

failures = 0
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, 'status_type="SUCCESS"', 1, true) then
    failures = failures + 1
  end
end

done = function(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("failures")
  end
  io.write(string.format("requests %d, not SUCCESS %d\n", summary.requests, total))
end
