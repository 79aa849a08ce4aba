-- Runs health.lua on one object, as Argo CD does: the object is the global `obj`, the
-- script's return value is the health. Usage: lua5.1 driver.lua health.lua object.lua
-- where object.lua is `return { ... }` (a Lua literal of the object). Prints two lines:
-- the status, then the message.
local script_path, object_path = arg[1], arg[2]
if script_path == nil or object_path == nil then
  io.stderr:write("usage: lua5.1 driver.lua health.lua object.lua\n")
  os.exit(2)
end
local object = assert(loadfile(object_path))()
local check = assert(loadfile(script_path))
setfenv(check, setmetatable({ obj = object }, { __index = _G }))
local hs = check()
if type(hs) ~= "table" or hs.status == nil then
  io.stderr:write("health.lua returned no status\n")
  os.exit(1)
end
io.write(hs.status, "\n", hs.message or "", "\n")
