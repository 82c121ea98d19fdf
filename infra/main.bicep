// branchsync in one resource group: storage (sales queue, tables, deployment container), the
// Function App on Flex Consumption, its user-assigned identity and role assignments, Key Vault
// for the admin key, Application Insights + Log Analytics, and three alerts.
//
// Deploy with `azd up` (azure.yaml) or `az deployment group create` (docs/deploy.md).
// Outputs are named like the environment variables they feed (azd writes them to .azure/<env>/.env).
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('azd environment name (e.g. prod); part of the resource names\' hash and a tag.')
param environmentName string

@description('Region for everything; it must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@secure()
@minLength(16)
@description('BRANCHSYNC_ADMIN_KEY: stored in Key Vault, never in app settings.')
param adminKey string

@description('Mail address for alerts; empty: alerts fire in the portal only.')
param alertEmail string = ''

@minValue(1)
@maxValue(36)
@description('Hours without a successful pull after which a branch raises an alert.')
param staleBranchHours int = 6

@minValue(1)
@description('Failed function executions in 15 minutes that raise an alert.')
param failureThreshold int = 5

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption instance memory (MB).')
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
@description('Flex Consumption maximum instance count.')
param maximumInstanceCount int = 40

@description('Zone-redundant Flex plan (only in regions that offer it).')
param zoneRedundant bool = false

@allowed([
  'queue'
  'route'
])
@description('BRANCHSYNC_PUSH_MODE: queue = branches push with a user delegation queue SAS (the push route is their fallback); route = no SAS, branches push through POST /api/push (where user delegation SAS for queues is unavailable). docs/deploy.md, "Push mode".')
param pushMode string = 'queue'

@description('When the nightly catalog compaction runs: NCRONTAB with seconds, in UTC (default 02:30 every day).')
param catalogCompactSchedule string = '0 30 2 * * *'

@description('When the data lake is written: NCRONTAB with seconds, in UTC (default: every hour at five past).')
param lakeWriteSchedule string = '0 5 * * * *'

@description('The IANA time zone whose calendar days are business days (the lake\'s date= folders).')
param businessTimeZone string = 'Asia/Dhaka'

@description('Object id of the Entra ID group that reads the data lake from BI tools (Storage Blob Data Reader on the lake container); empty: none yet.')
param lakeReaderGroupId string = ''

// One short hash keeps names unique per resource group + environment and stable across deploys.
var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  app: 'branchsync'
}
var functionAppName = 'func-branchsync-${token}'
// Container names: 3-63 lowercase letters, digits, dashes.
var deploymentContainerName = 'app-package-${token}'

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-branchsync-${token}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'st${token}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    principalId: identity.outputs.principalId
    lakeReaderGroupId: lakeReaderGroupId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: 'kv-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    adminKey: adminKey
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-branchsync-${token}'
    applicationInsightsName: 'appi-branchsync-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module functionApp 'modules/function.bicep' = {
  name: 'function'
  params: {
    name: functionAppName
    planName: 'plan-branchsync-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    adminKeySecretUri: keyVault.outputs.adminKeySecretUri
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
    pushMode: pushMode
    catalogCompactSchedule: catalogCompactSchedule
    lakeWriteSchedule: lakeWriteSchedule
    lakeContainerName: storage.outputs.lakeContainerName
    businessTimeZone: businessTimeZone
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    namePrefix: 'branchsync-${token}'
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
    alertEmail: alertEmail
    failureThreshold: failureThreshold
    staleBranchHours: staleBranchHours
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTIONAPP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_QUEUE_ENDPOINT string = storage.outputs.queueEndpoint
// Where BI tools read the lake (docs/reporting.md, "Data lake").
output BRANCHSYNC_LAKE_URL string = '${storage.outputs.blobEndpoint}${storage.outputs.lakeContainerName}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.workspaceName
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
// What branchsync-admin reads (README: export BRANCHSYNC_URL=...).
output BRANCHSYNC_URL string = functionApp.outputs.url
