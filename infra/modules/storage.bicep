// The storage account: the sales queue (and the poison queue the Functions host moves failed
// messages to), the tables of docs/storage.md, the blob container Flex Consumption deploys
// the app package from, and the data lake's container (docs/reporting.md). Keys are off: the
// app, the host and BI readers reach it with Entra ID.
param name string
param location string
param tags object = {}

@description('Geo-redundant by default: the sales table is head office\'s system of record.')
@allowed([
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GRS'

@description('Blob container Flex Consumption reads the app package from.')
param deploymentContainerName string

@description('Principal (object) id of the Function App\'s user-assigned identity.')
param principalId string

@description('Blob container of the data lake (BRANCHSYNC_LAKE_CONTAINER): Parquet files of the applied sales.')
param lakeContainerName string = 'lake'

@description('Object id of the Entra ID group whose members read the lake from BI tools (Storage Blob Data Reader on its container); empty: no reader role.')
param lakeReaderGroupId string = ''

// Branch PCs push to the sales queue over the public internet with a short-lived add-only SAS;
// they have no fixed addresses (their lines come and go), so the account cannot sit behind a
// firewall or a private endpoint without cutting the branches off.
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: branches push from dynamic public addresses, so the default network action must stay Allow; access is by Entra ID or a short-lived add-only SAS
  // checkov:skip=CKV_AZURE_59: public network access is how branches reach the queue (see CKV_AZURE_35)
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // No account keys: everything (host, app, deployment) authenticates with Entra ID.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      services: {
        blob: { enabled: true }
        file: { enabled: true }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// The data lake: private like everything here; readers come in with Entra ID and a role on it.
resource lakeContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: lakeContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// branchsync_cloud/queue_access.py SALES_QUEUE; the host names the poison queue '<queue>-poison'.
resource salesQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'sales'
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'sales-poison'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// docs/storage.md. The app also creates them on first use; declaring them here makes them
// visible to ops and keeps a deployment from depending on that.
resource branchesTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'branches'
}

resource salesTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'sales'
}

resource catalogTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'catalog'
}

resource deadlettersTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'deadletters'
}

// Built-in role definition ids (they are the same in every tenant).
var blobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // host leases + the deployment container
var queueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // queue trigger, poison queue
var queueDelegator = '7ee386e9-84f0-448e-80a6-f185f6533131' // Get User Delegation Key for the branches' push SAS
var tableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // the tables above, and the hourly nonce tables the app creates and drops (account scope)
var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // the app writes the lake (container scope)
var blobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // BI readers of the lake (container scope)

// Role assignments are named with guid() over scope + principal + role, so a redeploy finds
// the same assignment instead of failing on a duplicate.
resource blobOwnerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: account
  name: guid(account.id, principalId, blobDataOwner)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataOwner)
  }
}

resource queueContributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: account
  name: guid(account.id, principalId, queueDataContributor)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueDataContributor)
  }
}

// Without account keys the push SAS handed to branches must be a user delegation SAS, and
// requesting the delegation key needs queueServices/generateUserDelegationKey/action: the
// only thing this role grants (see docs/deploy.md, "Open point").
resource queueDelegatorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: account
  name: guid(account.id, principalId, queueDelegator)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueDelegator)
  }
}

resource tableContributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: account
  name: guid(account.id, principalId, tableDataContributor)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', tableDataContributor)
  }
}

// The lake's writer, on the lake alone: it keeps writing should the account-wide owner role
// above ever be narrowed to the host's own containers.
resource lakeWriterAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: lakeContainer
  name: guid(lakeContainer.id, principalId, blobDataContributor)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
  }
}

// Head office's BI group reads the lake (Power BI, Fabric, Synapse serverless, DuckDB) and nothing else.
resource lakeReaderAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(lakeReaderGroupId)) {
  scope: lakeContainer
  name: guid(lakeContainer.id, lakeReaderGroupId, blobDataReader)
  properties: {
    principalId: lakeReaderGroupId
    principalType: 'Group'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataReader)
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
output lakeContainerName string = lakeContainer.name
