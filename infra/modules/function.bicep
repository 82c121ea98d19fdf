// The Function App on the Flex Consumption plan (Linux, Python 3.11). It runs as the
// user-assigned identity: for the host's storage (AzureWebJobsStorage__*), the deployment
// package container, Key Vault references and Application Insights. No connection string with
// a key appears anywhere in its settings.
param name string
param planName string
param location string
param tags object = {}

@description('Resource id and client id of the user-assigned identity.')
param identityId string
param identityClientId string

param storageAccountName string
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param deploymentContainerName string

param applicationInsightsConnectionString string

@description('Versionless Key Vault secret URI of the admin key.')
param adminKeySecretUri string

@allowed([
  512
  2048
  4096
])
@description('Memory per instance (MB). More memory also means more CPU per instance, and a higher price per second.')
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
@description('Upper bound on instances the platform scales out to (40 is the smallest Flex allows).')
param maximumInstanceCount int = 40

@description('Spread instances over availability zones (only in regions where Flex Consumption offers it).')
param zoneRedundant bool = false

@allowed([
  'queue'
  'route'
])
@description('BRANCHSYNC_PUSH_MODE: how branches push (queue SAS, or the POST /api/push route).')
param pushMode string = 'queue'

@description('CATALOG_COMPACT_SCHEDULE: when the catalog compaction runs (NCRONTAB with seconds, UTC).')
param catalogCompactSchedule string = '0 30 2 * * *'

@description('LAKE_WRITE_SCHEDULE: when the data lake is written (NCRONTAB with seconds, UTC).')
param lakeWriteSchedule string = '0 5 * * * *'

@description('BRANCHSYNC_LAKE_CONTAINER: the data lake\'s blob container.')
param lakeContainerName string

@description('BRANCHSYNC_BUSINESS_TIMEZONE: the IANA time zone whose days are business days.')
param businessTimeZone string = 'Asia/Dhaka'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy for Flex Consumption exists only in some regions; set zoneRedundant=true where the region offers it
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: branch PCs call the HTTP API over the public internet from dynamic addresses; every request is HMAC-signed per branch or carries the admin key (docs/protocol.md)
  // checkov:skip=CKV_AZURE_17: no client certificates: branches authenticate each request with their own HMAC secret; a certificate per branch PC would add a PKI to run
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero; always-ready instances are a cost choice, and branches are offline-first and simply sync again later
  // checkov:skip=CKV_AZURE_78: Flex Consumption rejects siteConfig.ftpsState (ARM error 51021 lists it among the properties invalid for Flex) and offers no FTP deployment; code arrives only through the deployment storage container
  // checkov:skip=CKV_AZURE_213: App Service health check (instance eviction) is not part of Flex Consumption scaling; GET /api/health is there for an external availability test
  name: name
  location: location
  // azd finds the app to deploy the `api` service (azure.yaml) to by this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    // Resolve @Microsoft.KeyVault(...) settings with the user-assigned identity (the default is
    // the system-assigned one, which this app does not have).
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      // Flex Consumption takes the runtime from functionAppConfig.runtime below:
      // FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION must NOT be set (the platform
      // rejects them). BRANCHSYNC_PUBLIC_URL is left unset: enrollment codes then carry the
      // scheme and host of the admin's request, which is this app's own URL.
      appSettings: [
        // Identity-based connection for the host and the queue trigger (connection="AzureWebJobsStorage").
        { name: 'AzureWebJobsStorage__accountName', value: storageAccountName }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        { name: 'AzureWebJobsStorage__blobServiceUri', value: blobEndpoint }
        { name: 'AzureWebJobsStorage__queueServiceUri', value: queueEndpoint }
        { name: 'AzureWebJobsStorage__tableServiceUri', value: tableEndpoint }
        // For the app's own SDK clients: DefaultAzureCredential picks the user-assigned identity.
        { name: 'AZURE_CLIENT_ID', value: identityClientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: applicationInsightsConnectionString }
        // Local auth is off on the component: telemetry is sent with the identity.
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
        { name: 'BRANCHSYNC_ADMIN_KEY', value: '@Microsoft.KeyVault(SecretUri=${adminKeySecretUri})' }
        { name: 'BRANCHSYNC_PUSH_MODE', value: pushMode }
        // The compaction timer's schedule (function compact_catalog reads %CATALOG_COMPACT_SCHEDULE%).
        { name: 'CATALOG_COMPACT_SCHEDULE', value: catalogCompactSchedule }
        // The data lake (function write_lake reads %LAKE_WRITE_SCHEDULE%; docs/reporting.md).
        { name: 'LAKE_WRITE_SCHEDULE', value: lakeWriteSchedule }
        { name: 'BRANCHSYNC_LAKE_CONTAINER', value: lakeContainerName }
        { name: 'BRANCHSYNC_BUSINESS_TIMEZONE', value: businessTimeZone }
        // Threads the Python worker runs sync functions on: host.json's batchSize, so the queue
        // messages of one branch's backlog that the host starts at once are opened side by side and
        // applied in a turn or two (conflicts.together) instead of a turn per few (cores + 4 threads).
        { name: 'PYTHON_THREADPOOL_THREAD_COUNT', value: '16' }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

output name string = site.name
output url string = 'https://${site.properties.defaultHostName}'
