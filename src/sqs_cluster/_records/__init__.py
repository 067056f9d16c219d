"""Records: the DynamoDB record model, its codec and size limits, and the store that reads them."""
