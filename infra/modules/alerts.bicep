// Three alerts, all log search alerts over the Log Analytics workspace the app's Application
// Insights writes to (tables AppTraces, AppRequests). docs/deploy.md explains each one.
//
// Why log queries and not storage metrics for the poison queue: the queue metric
// QueueMessageCount exists only for the whole account (no per-queue dimension), so it cannot tell
// `sales-poison` from `sales`. The Functions host logs a line for every message it moves to the
// poison queue; that line is what the first rule counts.
param namePrefix string
param location string
param tags object = {}

@description('Resource id of the Log Analytics workspace behind Application Insights.')
param workspaceId string

@description('Where alerts are mailed; empty: the rules still fire and show in the portal, but notify no one.')
param alertEmail string = ''

@minValue(1)
@description('Failed function executions (queue runs and 5xx answers) in 15 minutes that raise an alert.')
param failureThreshold int = 5

@minValue(1)
@maxValue(36)
@description('Hours without a successful pull after which a branch counts as not syncing. The rule looks back 2 days, so this must stay well below 48.')
param staleBranchHours int = 6

var actionGroupName = '${namePrefix}-ops'
var actions = empty(alertEmail) ? {} : {
  actionGroups: [
    resourceId('Microsoft.Insights/actionGroups', actionGroupName)
  ]
}

resource opsGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'branchsync'
    enabled: true
    emailReceivers: [
      {
        name: 'ops'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// 1. A message reached maxDequeueCount (host.json: 5) and the host moved it to sales-poison.
// The host's own log line (WebJobs queue listener): "Message has reached MaxDequeueCount of 5.
// Moving message to queue 'sales-poison'." Bad input never gets here (it is dead-lettered in the
// app); a poisoned message means storage kept failing for that message: look at it.
var poisonQuery = '''
AppTraces
| where Message has "MaxDequeueCount" and Message has "sales-poison"
'''

resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-poison-queue'
  location: location
  tags: tags
  kind: 'LogAlert'
  // The action group is referenced by id (it may not exist), so say the order explicitly.
  dependsOn: [
    opsGroup
  ]
  properties: {
    displayName: 'branchsync: messages moved to sales-poison'
    description: 'The Functions host moved at least one sales message to the poison queue after 5 failed attempts. The sales in it are not applied until the message is re-queued; the branch re-pushes unacknowledged sales after 10 minutes, so check why applying kept failing.'
    severity: 1
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: poisonQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

// 2. Function executions that failed. Every invocation is one AppRequests row. Refused HTTP
// requests (4xx: bad signature, unknown branch, bad input) are the API working as specified,
// so they are left out; what remains is 5xx answers and queue runs that raised (storage down).
var failureQuery = '''
AppRequests
| where Success == false
| where not(ResultCode startswith "4")
'''

resource failureAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-function-failures'
  location: location
  tags: tags
  kind: 'LogAlert'
  // The action group is referenced by id (it may not exist), so say the order explicitly.
  dependsOn: [
    opsGroup
  ]
  properties: {
    displayName: 'branchsync: function failures'
    description: 'More than ${failureThreshold} function executions failed (5xx or a queue run that raised) in 15 minutes.'
    severity: 2
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: failureQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: failureThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

// 3. A branch that has not synced. The cloud logs one line per successful pull
// (branchsync_cloud/pull.py: "pull branch=<name> cursor=..."), and one at enrollment (branches.py: "branch
// enrolled branch=<name>"), so a new branch is watched from the moment it enrolls. The rule looks back two
// days (overrideQueryTimeRange) and reports, one alert per branch (dimension `branch`), every
// branch whose newest such line is older than staleBranchHours. A branch silent for more than two
// days drops out of the result and the alert resolves: for those, `branchsync-admin branches`
// shows last_pull from the branches table.
var staleQuery = replace('''
AppTraces
| where Message startswith "pull branch=" or Message startswith "branch enrolled branch="
| extend branch = extract(@"branch=([A-Za-z0-9_-]+)", 1, Message)
| where isnotempty(branch)
| summarize last_seen = max(TimeGenerated) by branch
| where last_seen < ago(STALE_HOURSh)
''', 'STALE_HOURS', string(staleBranchHours))

resource staleBranchAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-branch-not-syncing'
  location: location
  tags: tags
  kind: 'LogAlert'
  // The action group is referenced by id (it may not exist), so say the order explicitly.
  dependsOn: [
    opsGroup
  ]
  properties: {
    displayName: 'branchsync: branch not syncing'
    description: 'A branch has had no successful pull for ${staleBranchHours} hours: its line may be down, the PC off, the scheduled task broken, or its clock wrong (clock_skew refusals).'
    severity: 3
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    overrideQueryTimeRange: 'P2D'
    criteria: {
      allOf: [
        {
          query: staleQuery
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'branch'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

output poisonAlertName string = poisonAlert.name
output failureAlertName string = failureAlert.name
output staleBranchAlertName string = staleBranchAlert.name
