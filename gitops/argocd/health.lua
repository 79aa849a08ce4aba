-- Argo CD health check for codebuild.operator.dev/CodeBuildRun and CodeBuildBatchRun
-- (Lua 5.1 / gopher-lua): both kinds carry the same conditions.
-- Modelled on Argo CD's Tekton TaskRun check: the Succeeded condition decides.
--   Succeeded=True                -> Healthy
--   Succeeded=False (or Stalled)  -> Degraded, with the condition's message
--   anything else, and deleting   -> Progressing
local hs = {}
local thing = "build"
if obj.kind == "CodeBuildBatchRun" then
  thing = "build batch"
end

local function describe(condition, fallback)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason
  end
  return fallback
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: the operator stops the " .. thing .. " (unless spec.operator.onDelete is LeaveRunning)"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to start the " .. thing
  return hs
end

if obj.metadata ~= nil and obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest change"
  return hs
end

local succeeded = nil
local stalled = nil
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Succeeded" then
    succeeded = condition
  elseif condition.type == "Stalled" then
    stalled = condition
  end
end

if succeeded ~= nil and succeeded.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(succeeded, "Succeeded")
  return hs
end
if succeeded ~= nil and succeeded.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(succeeded, "Failed")
  return hs
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

hs.status = "Progressing"
if succeeded ~= nil then
  hs.message = describe(succeeded, "In progress")
else
  hs.message = "Waiting for the operator to start the " .. thing
end
return hs
